"""`python -m serving.client`: see serving.client.cli."""

import sys

from serving.client.cli import main

sys.exit(main())
