import sys

from renkei.cli import main

sys.exit(main())
