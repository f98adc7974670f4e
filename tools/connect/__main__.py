"""`python -m tools.connect`: see tools/connect/__init__.py."""

import sys

from tools.connect.cli import main

sys.exit(main())
