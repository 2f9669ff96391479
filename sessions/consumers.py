from channels.generic.websocket import AsyncJsonWebsocketConsumer


class SessionConsumer(AsyncJsonWebsocketConsumer):
    """Placeholder until the session socket lands (being written now)."""

    async def connect(self) -> None:
        await self.close()
