"""The bridge: runs inside every sandbox, supervises OpenCode and talks to the control plane.

It is started with the sandbox's own `python3` (`python3 /opt/inspect/bridge/main.py`) and imports
nothing from the project or Django: only the standard library and the packages shipped in the tools
folder (see `install_sandbox_tools`). What it shares with the control plane is in `protocol.py`.
"""
