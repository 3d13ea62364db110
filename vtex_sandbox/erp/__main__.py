"""``python -m vtex_sandbox.erp``: serve the loopback ERP until Ctrl-C or SIGTERM."""
import sys

from ..cli import erp_main

sys.exit(erp_main())
