from channels.generic.websocket import AsyncJsonWebsocketConsumer


class BridgeConsumer(AsyncJsonWebsocketConsumer):
    """Placeholder until the bridge socket lands (being written now)."""

    async def connect(self) -> None:
        await self.close()
