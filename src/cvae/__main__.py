import sys

from cvae.cli import main

sys.exit(main())
