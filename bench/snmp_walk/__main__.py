import sys

from bench.snmp_walk.run import main

sys.exit(main())
