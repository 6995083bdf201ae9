"""``python -m bsp_fast <command> ...`` (same as ``bsp-fast``)."""

import sys

from bsp_fast.cli import main

sys.exit(main())
