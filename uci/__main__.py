"""``python -m uci``: the same as the ``azengine`` command (also the PyInstaller entry point)."""

import sys

from uci.cli import main

if __name__ == "__main__":
    sys.exit(main())
