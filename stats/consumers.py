"""The stats socket (/ws/stats/?repo=<id>): the live "humans prompting now" count for the page's repos.

It sends {"type": "prompting_now", "count": n} on connect, then whenever the count changes: counted again a moment
after the group "stats" is told someone started typing or a run ended (a burst of news is one count), and every
live.REFRESH_SECONDS. It listens for the person's access changes (sessions/access.py) like the session socket:
signed out, deactivated or without the repo any more, it closes with 4403; otherwise it counts their repos anew."""

import asyncio
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from sessions import access
from sessions.socket_base import AsyncDatabaseFreeConsumer
from stats import figures, live

FORBIDDEN = 4403
RECOUNT_DELAY_SECONDS = 1.0


def scope_of(user, query_string: bytes) -> figures.Scope | None:
    """The repos the socket counts for: the page's `?repo=`, if the person may see it, or all of theirs."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    values = parse_qs(query_string.decode("latin-1")).get("repo", [None])
    try:
        repo_id = figures.parse_repo_id(values[-1])
    except ValueError:
        return None
    return figures.scope_for(user, repo_id)


repos_of = database_sync_to_async(scope_of)


count_now = database_sync_to_async(live.prompting_now)


@database_sync_to_async
def scope_now(user_id: int, login: str, query_string: bytes) -> figures.Scope | None:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or access.login_ended(login):
        return None
    return scope_of(user, query_string)


class StatsConsumer(AsyncDatabaseFreeConsumer):
    scope_repos: figures.Scope | None = None
    last_count: int | None = None
    refresher: asyncio.Task | None = None
    recount: asyncio.Task | None = None
    access_groups: list[str] = []

    async def connect(self) -> None:
        # Accept first so the browser sees why it was closed (a foreign repo looks the same as an unknown one).
        await self.accept()
        self.scope_repos = await repos_of(self.scope.get("user"), self.scope.get("query_string", b""))
        if self.scope_repos is None:
            await self.close(code=FORBIDDEN)
            return
        user = self.scope["user"]
        self.login = access.login_of(getattr(self.scope.get("session"), "session_key", None))
        self.access_groups = [access.user_group(user.pk)]
        for group in [live.GROUP, *self.access_groups]:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.send_count()
        self.refresher = asyncio.create_task(self.refresh())

    async def disconnect(self, code: int) -> None:
        for task in (self.refresher, self.recount):
            if task is not None:
                task.cancel()
        if self.scope_repos is not None:
            for group in [live.GROUP, *self.access_groups]:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def access_changed(self, message: dict) -> None:
        if access.concerns(message, self.login):
            await self.recheck()

    async def recheck(self) -> None:
        """The person's repos again, from a fresh account: none (signed out, deactivated, the repo not theirs any
        more) closes the socket."""
        self.scope_repos = await scope_now(self.scope["user"].pk, self.login, self.scope.get("query_string", b""))
        if self.scope_repos is None:
            await self.close(code=FORBIDDEN)
            return
        await self.send_count()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        pass  # the page only listens: whatever it sends is ignored, never parsed

    async def stats_changed(self, message: dict) -> None:
        if self.recount is None or self.recount.done():
            self.recount = asyncio.ensure_future(self.recount_soon())

    async def recount_soon(self) -> None:
        await asyncio.sleep(RECOUNT_DELAY_SECONDS)
        await self.send_count()

    async def refresh(self) -> None:
        """People who stopped typing drop out without anybody telling, and a repo's access list may have changed:
        check and count again now and then."""
        while self.scope_repos is not None:
            await asyncio.sleep(live.REFRESH_SECONDS)
            await self.recheck()  # a repo's access list may have changed too

    async def send_count(self) -> None:
        if self.scope_repos is None:
            return  # closed meanwhile
        count = await count_now(self.scope_repos.repo_ids)
        if count != self.last_count:
            self.last_count = count
            await self.send_json({"type": "prompting_now", "count": count})
