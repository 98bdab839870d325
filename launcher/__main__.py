"""`python -m launcher`: the same as the `triton-launch` console script."""

import sys

from launcher.cli import main

sys.exit(main())
