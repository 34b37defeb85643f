"""`python -m netdiag` is the same as the `netdiag` command."""

import sys

from netdiag.cli import main

sys.exit(main())
