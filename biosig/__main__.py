import sys

from biosig.cli import main

sys.exit(main())
