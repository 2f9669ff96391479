"""A channel-layer group seen from a test, as a consumer in the same process would see it."""

import asyncio

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers


class Listener:
    """A channel in a channel-layer group, as a bridge socket or a session socket would be.
    It keeps one event loop of its own: a channel's receive buffer is bound to the loop it first ran in."""

    def __init__(self, group: str):
        self.group = group
        self.loop = asyncio.new_event_loop()
        self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(group, self.channel))

    def receive(self, timeout: float = 3) -> dict:
        return self.loop.run_until_complete(asyncio.wait_for(self.layer.receive(self.channel), timeout))

    def close(self) -> None:
        self.loop.run_until_complete(self.layer.group_discard(self.group, self.channel))
        self.loop.close()

    def nothing(self, timeout: float = 0.3) -> bool:
        try:
            message = self.receive(timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"expected no message, got {message}")

    def commands(self) -> list[dict]:
        """The bridge commands waiting, in order (waits briefly for the first)."""
        found = []
        try:
            while True:
                found.append(self.receive(0.3 if not found else 0.1)["command"])
        except TimeoutError:
            return found
