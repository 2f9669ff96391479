"""Bridge events from every bridge socket of this process, stored together.

Each socket hands over what it received (in order, one batch at a time); whatever the sockets
handed over while the previous write ran is written next, in one transaction: one hop to
Channels' database thread and one commit for many bridges. The session events to fan out come
back from that thread and are sent from the event loop."""

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from django.db import transaction

from sandboxes.models import Sandbox
from sessions import bridge_events
from sessions.events import collect_fan_out, send_fan_out

logger = logging.getLogger(__name__)


@database_sync_to_async
def store_events(batch: list[tuple[Sandbox, str, dict]]) -> tuple[list[str], list[dict]]:
    """Store events in one transaction, in order. Returns what was wrong with each ("" if it is
    stored, or was already) and the session events to fan out."""
    with collect_fan_out() as fan_out, transaction.atomic():
        problems = bridge_events.handle_bridge_events(batch)
    return problems, fan_out


class Writer:
    def __init__(self) -> None:
        self.waiting: list[tuple[Sandbox, list[tuple[str, dict]], asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def store(self, sandbox: Sandbox, events: list[tuple[str, dict]]) -> list[str]:
        """Store a socket's events, in order; what was wrong with each, as store_events."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((sandbox, events, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())
        return await future

    async def run(self) -> None:
        while self.waiting:
            # Sorted by sandbox (stable: each socket's order stays) so that two processes lock
            # the sessions' rows in the same order.
            taken = sorted(self.waiting, key=lambda item: str(item[0].pk))
            self.waiting = []
            # Each socket's leading plain events (text, tool calls) are written and fanned out first:
            # a state change after them (an idle, with its prompt's bookkeeping and the queue's next
            # step) takes longer to write, and the text before it need not wait for that.
            heads, tails = [], []
            for index, (sandbox, events, _) in enumerate(taken):
                split = next((n for n, (_id, event) in enumerate(events) if not bridge_events.is_plain(event)),
                             len(events))
                heads += [(index, sandbox, event_id, event) for event_id, event in events[:split]]
                tails += [(index, sandbox, event_id, event) for event_id, event in events[split:]]
            problems: list[list[str]] = [[] for _ in taken]
            try:
                for part in (heads, tails):
                    if not part:
                        continue
                    part_problems, fan_out = await store_events([(box, i, e) for _n, box, i, e in part])
                    await send_fan_out(fan_out)
                    for (index, *_rest), problem in zip(part, part_problems, strict=True):
                        problems[index].append(problem)
            except Exception as e:  # each socket closes, its bridge sends again (stored ones are acked then)
                for _, _, future in taken:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, _, future), socket_problems in zip(taken, problems, strict=True):
                if not future.done():
                    future.set_result(socket_problems)


_writers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Writer]" = weakref.WeakKeyDictionary()


def writer() -> Writer:
    """This event loop's writer (one per process under Daphne; tests run several loops)."""
    loop = asyncio.get_running_loop()
    if loop not in _writers:
        _writers[loop] = Writer()
    return _writers[loop]
