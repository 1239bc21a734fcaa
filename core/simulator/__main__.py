"""``python -m core.simulator [--port P] ...``: the standalone simulator."""

import sys

from core.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
