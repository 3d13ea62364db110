"""``python -m vtex_sandbox``: serve the VTEX sandbox until Ctrl-C or SIGTERM."""
import sys

from .cli import sandbox_main

sys.exit(sandbox_main())
