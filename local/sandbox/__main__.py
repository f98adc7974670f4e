"""`python -m local.sandbox ...`: see local/sandbox/cli.py."""

import sys

from local.sandbox.cli import main

sys.exit(main())
