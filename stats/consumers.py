"""The stats socket (/ws/stats/?repo=<id>): the live "humans prompting now" count for the page's repos.

It sends {"type": "prompting_now", "count": n} on connect, then whenever the count changes: counted again when
the group "stats" is told someone started typing or a run ended, and every live.REFRESH_SECONDS."""

import asyncio
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from sessions.socket_base import AsyncDatabaseFreeConsumer
from stats import figures, live

FORBIDDEN = 4403


@database_sync_to_async
def repos_of(user, query_string: bytes) -> figures.Scope | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    values = parse_qs(query_string.decode("latin-1")).get("repo", [None])
    try:
        repo_id = figures.parse_repo_id(values[-1])
    except ValueError:
        return None
    return figures.scope_for(user, repo_id)


count_now = database_sync_to_async(live.prompting_now)


class StatsConsumer(AsyncDatabaseFreeConsumer):
    scope_repos: figures.Scope | None = None
    last_count: int | None = None
    refresher: asyncio.Task | None = None

    async def connect(self) -> None:
        # Accept first so the browser sees why it was closed (a foreign repo looks the same as an unknown one).
        await self.accept()
        self.scope_repos = await repos_of(self.scope.get("user"), self.scope.get("query_string", b""))
        if self.scope_repos is None:
            await self.close(code=FORBIDDEN)
            return
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        await self.send_count()
        self.refresher = asyncio.create_task(self.refresh())

    async def disconnect(self, code: int) -> None:
        if self.refresher is not None:
            self.refresher.cancel()
        if self.scope_repos is not None:
            await self.channel_layer.group_discard(live.GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        pass  # the page only listens: whatever it sends is ignored, never parsed

    async def stats_changed(self, message: dict) -> None:
        await self.send_count()

    async def refresh(self) -> None:
        """People who stopped typing drop out without anybody telling: count again now and then."""
        while True:
            await asyncio.sleep(live.REFRESH_SECONDS)
            await self.send_count()

    async def send_count(self) -> None:
        assert self.scope_repos is not None
        count = await count_now(self.scope_repos.repo_ids)
        if count != self.last_count:
            self.last_count = count
            await self.send_json({"type": "prompting_now", "count": count})
