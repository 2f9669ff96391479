"""Start the bridge: `python3 /opt/inspect/bridge/main.py` (the sandbox's python3, no virtualenv)."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # Import this folder as the package `bridge`, and never shadow the standard library with its modules.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bridge.app import main

    main()
