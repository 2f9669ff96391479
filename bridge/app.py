"""Wires the bridge together and runs it until `shutdown` (or SIGTERM)."""

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time

from .agent import Agent
from .config import BridgeConfig, ConfigError
from .outbox import Outbox

PR_SET_DUMPABLE = 4  # linux/prctl.h
log = logging.getLogger("bridge")


async def run(config: BridgeConfig) -> int:
    from .link import ControlLink  # needs websockets, from the tools folder

    outbox = Outbox()
    agent = Agent(config, outbox)
    link = ControlLink(config, outbox, agent.hello, lambda: agent.translator.busy, agent.on_command)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.done.set)
    tasks = [asyncio.create_task(c) for c in (agent.server.supervise(), link.run(), agent.work(), agent.watchdog(),
                                                agent.workspace.run())]
    failed: list[BaseException] = []

    def report_failure(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("bridge task failed; exiting", exc_info=task.exception())
            failed.append(task.exception())
            agent.done.set()

    for task in tasks:
        task.add_done_callback(report_failure)
    await agent.done.wait()
    log.info("shutting down")
    await agent.server.stop()
    await agent.workspace.stop()
    deadline = time.monotonic() + 3  # let the last command result reach the control plane
    while outbox.has_messages and link.connection is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if link.connection is not None:
        await link.connection.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 1 if failed else 0


def keep_memory_private() -> bool:
    """Make this process non-dumpable, as ssh-agent does: the agent's processes run as the same user, and could
    otherwise read the bridge's token from /proc/<pid>/environ or its memory, then send events as the bridge.
    Its children (OpenCode, VS Code) are dumpable again once they exec. False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def main() -> None:
    if not keep_memory_private():
        print("bridge: could not make itself non-dumpable; its token is readable by the sandbox's processes",
              file=sys.stderr)
    logging.basicConfig(
        stream=sys.stderr, level=os.environ.get("INSPECT_BRIDGE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        config = BridgeConfig.from_env()
    except ConfigError as e:
        log.error("%s", e)
        sys.exit(2)
    tools_python = config.tools_dir / "python"
    if tools_python.is_dir() and str(tools_python) not in sys.path:
        sys.path.insert(0, str(tools_python))
    sys.exit(asyncio.run(run(config)))
