import sys

from bench.risport.run import main

sys.exit(main())
