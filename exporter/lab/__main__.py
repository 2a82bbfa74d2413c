import sys

from exporter.lab.cli import main

sys.exit(main())
