"""The channel layer: channels-redis's pub/sub layer, made to outlive a Redis restart.

After Redis restarts, each Daphne's first command on its old connection fails ("Connection lost"), and redis-py
drops that connection. Without a retry, that first failure closes a browser's or a bridge's socket with 1011.
Here each call is tried again on a new connection, a few times over about a second."""

import asyncio
import logging

from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
RETRY_DELAYS = (0.05, 0.25, 0.7)  # seconds before each further try


class ReconnectingChannelLayer(RedisPubSubChannelLayer):
    async def _retrying(self, name: str, *args, **kwargs):
        for delay in (*RETRY_DELAYS, None):
            try:
                return await getattr(self._get_layer(), name)(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
                if delay is None:
                    raise
                logger.warning("channel layer %s failed (%s); trying again on a new connection", name, error)
                await asyncio.sleep(delay)

    async def send(self, channel: str, message: dict) -> None:
        await self._retrying("send", channel, message)

    async def group_add(self, group: str, channel: str) -> None:
        await self._retrying("group_add", group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._retrying("group_discard", group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        await self._retrying("group_send", group, message)
