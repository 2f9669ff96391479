"""The bridge: runs inside every sandbox, supervises OpenCode and talks to the control plane.

It is started with the sandbox's own `python3` (`python3 /opt/inspect/bridge/main.py`) and must
import nothing from the project or Django: only the standard library and the packages shipped in
the tools folder (see `install_sandbox_tools`). The versions below are pinned here, and only here.
"""

BRIDGE_VERSION = "1"
OPENCODE_VERSION = "1.18.33"
# The plugin package OpenCode installs into its config folders at start-up (same version as OpenCode).
OPENCODE_PLUGIN_PACKAGE = "@opencode-ai/plugin"
WEBSOCKETS_VERSION = "17.4"
# VS Code in the browser. 4.100.3 is the newest release that runs on Node 20 (the Debian/NodeSource Node here).
CODE_SERVER_VERSION = "4.100.3"
