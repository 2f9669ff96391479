"""The WebSocket to the control plane: dial out, say hello, send the outbox, heartbeat, take commands,
and dial again with backoff whenever the connection fails or is refused."""

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from .config import BridgeConfig
from .outbox import Outbox
from .protocol import Heartbeat

log = logging.getLogger("bridge.link")


class ControlLink:
    def __init__(
        self,
        config: BridgeConfig,
        outbox: Outbox,
        hello: Callable[[], dict],
        busy: Callable[[], bool],
        on_command: Callable[[dict], None],
    ):
        self.config = config
        self.outbox = outbox
        self.hello = hello
        self.busy = busy
        self.on_command = on_command
        self.connection: ClientConnection | None = None
        self.connects = 0

    async def run(self) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except InvalidStatus as e:
                log.warning("control plane refused the connection: HTTP %s", e.response.status_code)
            except (OSError, TimeoutError, WebSocketException) as e:
                log.info("control plane connection: %s", e or type(e).__name__)
            if time.monotonic() - started > 10:
                delay = 0.5
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.reconnect_max_seconds)

    async def _session(self) -> None:
        async with connect(
            self.config.websocket_url,
            additional_headers={"Authorization": f"Bearer {self.config.token}"},
            user_agent_header="inspect-bridge",
            open_timeout=10,
            ping_interval=20,
            ping_timeout=20,
            max_size=64 * 1024 * 1024,
            proxy=None,
        ) as ws:
            self.connects += 1
            log.info("connected to the control plane (%s pending)", len(self.outbox))
            await ws.send(json.dumps(self.hello()))
            self.connection = ws
            tasks = [asyncio.create_task(self._send_outbox(ws)), asyncio.create_task(self._heartbeat(ws))]
            try:
                async for raw in ws:
                    self._received(raw)
            finally:
                self.connection = None
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _received(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("ignored a message that is not JSON: %.100r", raw)
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "ack":
            self.outbox.ack(str(message.get("id")))
        elif message.get("type") == "refused":  # never stored: sending it again would change nothing
            log.warning("the control plane refused event %.100s: %.300s", message.get("id"), message.get("message"))
            self.outbox.ack(str(message.get("id")))
        elif message.get("type") == "command":
            self.on_command(message)
        else:
            log.info("ignored a message of type %r", message.get("type"))

    async def _send_outbox(self, ws: ClientConnection) -> None:
        """Everything pending, in order, then whatever is added; never the same thing twice."""
        last = 0
        try:
            while True:
                self.outbox.changed.clear()
                for seq, message in self.outbox.after(last):
                    await ws.send(json.dumps(message))
                    last = seq
                    self.outbox.sent(seq)
                await self.outbox.changed.wait()
        except (asyncio.CancelledError, WebSocketException):
            raise
        except Exception:
            log.exception("sending failed; reconnecting")
            await ws.close()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            heartbeat: Heartbeat = {"type": "heartbeat", "busy": self.busy()}
            await ws.send(json.dumps(heartbeat))
            await asyncio.sleep(self.config.heartbeat_seconds)
