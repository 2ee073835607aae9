import sys
from pyops.cli import main
sys.exit(main())
