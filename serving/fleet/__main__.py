"""`python -m serving.fleet`: see serving.fleet.cli."""

import sys

from serving.fleet.cli import main

sys.exit(main())
