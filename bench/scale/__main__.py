"""Scale benchmark: 1,000 CUCM nodes and 100,000 phones.

Run from the repository root: `.venv/bin/python -m bench.scale` (see bench/README.md).
"""

import sys

from bench.scale.run import main

sys.exit(main())
