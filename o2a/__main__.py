import sys

from o2a.cli import main

sys.exit(main())
