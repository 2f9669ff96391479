"""Bridge events stored a batch at a time (bridge_events.handle_bridge_events, events.append_events):
the same log as one event at a time, in a number of queries that does not grow with the batch."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from sandboxes.lifecycle import State
from sessions import bridge_events
from sessions.events import append_events, collect_fan_out
from sessions.models import Event, Prompt, Session

pytestmark = pytest.mark.django_db


def log(session: Session) -> list[tuple[int, str, dict, str]]:
    return list(Event.objects.filter(session=session).order_by("seq")
                .values_list("seq", "kind", "data", "bridge_event_id"))


def text(n: int) -> dict:
    return {"kind": "text_delta", "delta": str(n)}


@pytest.fixture
def sessions_on_sandboxes(repo, user, make_sandbox):
    def make(count: int) -> list[tuple[Session, object]]:
        pairs = []
        for _ in range(count):
            sandbox = make_sandbox(State.RUNNING)
            pairs.append((Session.objects.create(repo=repo, creator=user, sandbox=sandbox), sandbox))
        return pairs
    return make


@pytest.fixture
def store(django_capture_on_commit_callbacks):
    """As the bridge socket's writer does: one transaction, what commits is collected for fan-out."""
    def store(batch) -> tuple[list[str], list[dict]]:
        with collect_fan_out() as fanned_out, django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                problems = bridge_events.handle_bridge_events(batch)
        return problems, fanned_out
    return store


def test_a_batch_from_many_sandboxes_gives_each_session_its_own_seqs_in_order(sessions_on_sandboxes, store):
    (first, box1), (second, box2) = sessions_on_sandboxes(2)
    batch = [(box1, "a1", text(1)), (box2, "b1", text(1)), (box1, "a2", text(2)), (box2, "b2", text(2))]

    problems, fanned_out = store(batch)

    assert problems == ["", "", "", ""]
    assert log(first) == [(1, "text_delta", {"delta": "1"}, "a1"), (2, "text_delta", {"delta": "2"}, "a2")]
    assert log(second) == [(1, "text_delta", {"delta": "1"}, "b1"), (2, "text_delta", {"delta": "2"}, "b2")]
    assert [(m["session_id"], m["seq"]) for m in fanned_out] == [
        (first.pk, 1), (second.pk, 1), (first.pk, 2), (second.pk, 2)]
    first.refresh_from_db()
    assert first.last_seq == 2


def test_resent_events_are_stored_once_whether_stored_before_or_twice_in_one_batch(sessions_on_sandboxes, store):
    [(session, box)] = sessions_on_sandboxes(1)
    store([(box, "e1", text(1))])

    problems, fanned_out = store([(box, "e1", text(1)), (box, "e2", text(2)), (box, "e2", text(2))])

    assert problems == ["", "", ""]  # all acked: the bridge may forget them
    assert [(seq, event_id) for seq, _k, _d, event_id in log(session)] == [(1, "e1"), (2, "e2")]
    assert [m["seq"] for m in fanned_out] == [2]


def test_refused_events_get_a_reason_and_the_rest_of_the_batch_is_stored(sessions_on_sandboxes, store):
    (first, box1), (second, box2) = sessions_on_sandboxes(2)
    batch = [
        (box1, "a1", text(1)),
        (box1, "a2", {"kind": "status", "status": "idle"}),  # only the control plane says that
        (box2, "b1", {"kind": "k" * 51}),
        (box2, "", text(2)),
        (box2, "b3", text(3)),
        # What only the platform writes, in another author's name: no bridge (nor an agent with its token) may.
        (box1, "a3", {"kind": "prompt_queued", "prompt_id": 1, "author": {"id": 2, "name": "bob"}, "text": "rm -rf"}),
        (box1, "a4", {"kind": "made_up"}),
    ]

    problems, _ = store(batch)

    assert problems[0] == "" and problems[4] == ""
    assert "cannot send 'status'" in problems[1]
    assert "1 to 50 characters" in problems[2]
    assert "id of 1 to 100" in problems[3]
    assert "cannot send 'prompt_queued'" in problems[5] and "cannot send 'made_up'" in problems[6]
    assert [event_id for _s, _k, _d, event_id in log(first)] == ["a1"]
    assert [event_id for _s, _k, _d, event_id in log(second)] == ["b3"]


def test_a_sandbox_that_serves_no_session_has_its_events_acked_and_dropped(make_sandbox, store):
    pooled = make_sandbox(State.RUNNING)

    problems, fanned_out = store([(pooled, "p1", text(1))])

    assert problems == [""] and fanned_out == [] and not Event.objects.exists()


def test_state_changes_in_a_batch_are_applied_in_order_between_the_plain_events(sessions_on_sandboxes, user, store):
    (session, box), (other, other_box) = sessions_on_sandboxes(2)
    prompt = Prompt.objects.create(session=session, author=user, text="go", position=1,
                                   status=Prompt.Status.RUNNING)
    session.agent_busy = True
    session.save(update_fields=["agent_busy"])
    batch = [(box, "t1", text(1)), (other_box, "o1", text(1)),
             (box, "i1", {"kind": "idle", "prompt_id": prompt.pk}), (box, "t2", text(2))]

    problems, _ = store(batch)

    assert problems == ["", "", "", ""]
    assert [(seq, kind, event_id) for seq, kind, _d, event_id in log(session)] == [
        (1, "text_delta", "t1"), (2, "idle", "i1"), (3, "prompt_finished", ""), (4, "status", ""),
        (5, "text_delta", "t2")]
    prompt.refresh_from_db()
    session.refresh_from_db()
    assert prompt.status == Prompt.Status.DONE and not session.agent_busy
    assert [event_id for _s, _k, _d, event_id in log(other)] == ["o1"]


def test_storing_a_batch_takes_the_same_number_of_queries_for_ten_sandboxes_as_for_one(sessions_on_sandboxes, store):
    pairs = sessions_on_sandboxes(11)

    def queries(batch) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert store(batch)[0] == [""] * len(batch)
        return len(captured)

    one = queries([(pairs[0][1], "x1", text(1)), (pairs[0][1], "x2", text(2))])
    many = queries([(box, f"y{n}", text(n)) for _session, box in pairs[1:] for n in range(5)])

    assert many == one
    assert all(len(log(session)) == 5 for session, _box in pairs[1:])


def test_append_events_refuses_an_unknown_session_and_stores_nothing(sessions_on_sandboxes):
    [(session, _box)] = sessions_on_sandboxes(1)

    with pytest.raises(Session.DoesNotExist), transaction.atomic():
        append_events([(session.pk, "text_delta", {"delta": "1"}, ""), (session.pk + 999, "text_delta", {}, "")])

    assert not Event.objects.exists()
