"""The channel-layer group `sandbox-<id>` that a sandbox's bridge socket (sessions/bridge_socket.py) listens on:
commands for the bridge, and the sandbox's phase changes. The messages are typed here, the commands in
bridge/protocol.py."""

import logging
from typing import Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from bridge.protocol import Command

logger = logging.getLogger(__name__)


class BridgeCommandMessage(TypedDict):
    type: Literal["bridge.command"]
    command: Command


class SandboxPhaseMessage(TypedDict):
    type: Literal["sandbox.phase"]
    sandbox: str
    state: str
    synced_commit: str
    reason: str


def group_name(sandbox_id) -> str:
    return f"sandbox-{sandbox_id}"


def send_to_bridge(sandbox_id, command: Command) -> None:
    """After commit, hand a command to the sandbox's bridge socket, which numbers and forwards it."""
    group = group_name(sandbox_id)
    message: BridgeCommandMessage = {"type": "bridge.command", "command": command}

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(group, message)
        except Exception:
            logger.exception("could not send %s to %s", command["name"], group)

    transaction.on_commit(send)


def send_phase(sandbox_id, state: str, synced_commit: str, reason: str) -> None:
    """Tell the sandbox's bridge socket its phase changed (now, not at commit: the caller has committed)."""
    message: SandboxPhaseMessage = {"type": "sandbox.phase", "sandbox": str(sandbox_id), "state": state,
                                    "synced_commit": synced_commit, "reason": reason}
    async_to_sync(get_channel_layer().group_send)(group_name(sandbox_id), message)
