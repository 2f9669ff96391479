"""Rate limits: the bucket alone, and a session socket flooded by a script."""

import pytest
from asgiref.sync import async_to_sync

from sessions.rate_limits import SESSION_SOCKET_BURST, TokenBucket
from tests.sessions.test_consumers import signed_in, socket


def test_a_bucket_lets_a_burst_through_then_its_rate():
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.allow(0.4)  # 0.8 of a message earned
    assert bucket.allow(0.5)
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst


@pytest.mark.django_db(transaction=True)
def test_a_flooding_script_is_told_to_slow_down_and_nothing_it_sent_over_the_limit_is_done(session, user):
    headers = signed_in(user)

    async def scenario():
        ws = socket(session.pk, headers)
        assert (await ws.connect())[0]
        for _ in range(SESSION_SOCKET_BURST + 20):
            await ws.send_json_to({"type": "ping"})
        replies = [await ws.receive_json_from(timeout=5) for _ in range(SESSION_SOCKET_BURST + 20)]
        await ws.disconnect()
        return replies

    replies = async_to_sync(scenario)()
    pongs = [r for r in replies if r["type"] == "pong"]
    refused = [r for r in replies if r["type"] == "error" and "Too many messages" in r["message"]]
    assert len(pongs) >= SESSION_SOCKET_BURST and len(refused) >= 15 and len(pongs) + len(refused) == len(replies)
