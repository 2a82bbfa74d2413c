import sys

from bench.tls_vs_blackbox.run import main

sys.exit(main())
