"""`python -m emulator …` — the same as `ordersync emulator …`."""

import sys

from emulator.cli import main

sys.exit(main())
