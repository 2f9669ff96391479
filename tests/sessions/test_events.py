"""The event log: sequence numbers, stored before they are fanned out, once per bridge event id."""

import threading

import pytest
from django.db import connection, transaction

from sessions.events import append_event, events_after, group_name
from sessions.models import Event, Session

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_get_the_next_sequence_numbers_and_are_fanned_out(session, listen):
    listener = listen(group_name(session.pk))
    first = append_event(session.pk, "status", {"status": "starting"})
    second = append_event(session.pk, "text", {"text": "hi"})
    assert (first.seq, second.seq) == (1, 2)
    session.refresh_from_db()
    assert session.last_seq == 2
    message = listener.receive()
    assert message["type"] == "session.event"
    assert message["event"] == {"seq": 1, "kind": "status", "data": {"status": "starting"},
                                "created_at": first.created_at.isoformat()}
    assert listener.receive()["event"]["seq"] == 2


def test_an_event_is_fanned_out_only_once_stored_and_never_when_rolled_back(session, listen):
    listener = listen(group_name(session.pk))
    with transaction.atomic():
        append_event(session.pk, "text", {"text": "kept"})
        assert listener.nothing()  # not committed yet: nobody hears of it
    message = listener.receive()
    assert Event.objects.filter(session=session, seq=message["event"]["seq"]).exists()

    with pytest.raises(RuntimeError), transaction.atomic():
        append_event(session.pk, "text", {"text": "lost"})
        raise RuntimeError("the request failed")
    assert listener.nothing()
    assert list(session.events.values_list("seq", flat=True)) == [1]
    assert Session.objects.get(pk=session.pk).last_seq == 1


def test_a_resent_bridge_event_is_stored_once(session, listen):
    listener = listen(group_name(session.pk))
    stored = append_event(session.pk, "text", {"text": "once"}, bridge_event_id="evt-1")
    assert append_event(session.pk, "text", {"text": "once"}, bridge_event_id="evt-1") is None
    assert list(session.events.values_list("seq", "bridge_event_id")) == [(stored.seq, "evt-1")]
    assert Session.objects.get(pk=session.pk).last_seq == 1
    listener.receive()
    assert listener.nothing()


def test_events_after_a_seq_come_in_order_and_in_pages(session):
    for n in range(5):
        append_event(session.pk, "text", {"n": n})
    assert [e.seq for e in events_after(session.pk, 2, limit=100)] == [3, 4, 5]
    assert [e.seq for e in events_after(session.pk, 0, limit=2)] == [1, 2]
    assert events_after(session.pk, 5, limit=100) == []


def test_nul_characters_from_tool_output_are_stored_replaced(session):
    event = append_event(session.pk, "tool_finished", {"output": "bin\x00ary", "list": ["\x00"]})
    assert Event.objects.get(pk=event.pk).data == {"output": "bin\ufffdary", "list": ["\ufffd"]}


def test_bad_kinds_are_refused(session):
    with pytest.raises(ValueError):
        append_event(session.pk, "", {})
    with pytest.raises(ValueError):
        append_event(session.pk, "k" * 51, {})
    assert not session.events.exists()


def test_concurrent_appends_get_every_seq_exactly_once(session):
    errors = []

    def append_fifty(name: str) -> None:
        try:
            for n in range(50):
                append_event(session.pk, "text", {"writer": name, "n": n}, bridge_event_id=f"{name}-{n}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=append_fifty, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 101))
    assert Session.objects.get(pk=session.pk).last_seq == 100
    for name in ("a", "b"):  # each writer's events keep their order
        ns = [e.data["n"] for e in session.events.order_by("seq") if e.data["writer"] == name]
        assert ns == list(range(50))
