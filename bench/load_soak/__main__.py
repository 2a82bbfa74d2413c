"""`python -m bench.load_soak load|soak ...`: see bench/README.md, "Load and soak"."""

import sys

from bench.load_soak.cli import main

sys.exit(main())
