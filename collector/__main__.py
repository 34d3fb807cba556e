"""`python -m collector CONFIG.json`: run the per-second collector in its own process."""

import sys

from .sampler import main

sys.exit(main())
