"""`python -m harness.cli`: the console script, for a process that names its interpreter."""

import sys

from harness.cli import main

sys.exit(main())
