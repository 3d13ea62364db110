"""``python -m hub_bench``: benchmark the hub end to end (see ``hub_bench.cli``)."""
import sys

from .cli import main

sys.exit(main())
