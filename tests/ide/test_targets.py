"""Where a request for a session's service goes: `ide.targets.resolve`, called directly."""

import pytest
from django.contrib.auth.models import AnonymousUser

from ide.targets import resolve
from sandboxes.lifecycle import State
from tests.ide.support import ready

pytestmark = pytest.mark.django_db


def test_a_member_gets_the_backends_address_for_the_reported_port(users, make_session):
    session = make_session(users["ada"], {"ide": ready(41234), "preview-3000": ready(41235)})
    assert resolve(users["ada"], session.pk, "ide").base_url == "http://127.0.0.1:41234"
    # The port comes from the sandbox's record, never from the service's name.
    assert resolve(users["ada"], session.pk, "preview-3000").base_url == "http://127.0.0.1:41235"


def test_a_reported_port_the_sandbox_does_not_forward_is_never_reached(users, make_session):
    # A bridge reporting the host's Postgres port gets no address for it: only forwarded ports have one.
    session = make_session(users["ada"], {"ide": {"state": "ready", "port": 5432, "reason": ""}})
    target = resolve(users["ada"], session.pk, "ide")
    assert (target.status, target.base_url) == (502, "")
    assert "cannot be reached" in target.message


def test_who_may_see_every_session_is_a_member_of_each(users, make_session):
    session = make_session(users["ada"], {"ide": ready(41234)})
    assert resolve(users["root"], session.pk, "ide").ok


@pytest.mark.parametrize("who", ["bob", "anonymous", "inactive"])
def test_others_are_forbidden(users, make_session, who):
    session = make_session(users["ada"], {"ide": ready(41234)})
    user = {"bob": users["bob"], "anonymous": AnonymousUser(), "inactive": users["ada"]}[who]
    if who == "inactive":
        user.is_active = False
        user.save()
    target = resolve(user, session.pk, "ide")
    assert (target.status, target.base_url) == (403, "")


def test_unknown_sessions_are_forbidden_like_foreign_ones(users):
    assert resolve(users["ada"], 424242, "ide").status == 403


@pytest.mark.parametrize("info, status, message", [
    ({"state": "starting", "port": None, "reason": ""}, 503, "VS Code is starting…"),
    ({"state": "failed", "port": None, "reason": "exit 1"}, 502, "VS Code failed: exit 1"),
    ({"state": "stopped", "port": 8080, "reason": "idle"}, 503, "VS Code is stopped: idle"),
    ({"state": "ready", "port": None, "reason": ""}, 502, "VS Code is ready but reported no valid port."),
    ({"state": "ready", "port": True, "reason": ""}, 502, "VS Code is ready but reported no valid port."),
    ({"state": "ready", "port": 70000, "reason": ""}, 502, "VS Code is ready but reported no valid port."),
])
def test_services_that_cannot_be_reached_say_why(users, make_session, info, status, message):
    session = make_session(users["ada"], {"ide": info})
    target = resolve(users["ada"], session.pk, "ide")
    assert (target.status, target.message, target.base_url) == (status, message, "")


@pytest.mark.parametrize("state", [State.TERMINATED, State.FAILED])
def test_ended_sandboxes_are_not_reached(users, make_session, state):
    session = make_session(users["ada"], {"ide": ready(41234)}, state=state)
    target = resolve(users["ada"], session.pk, "ide")
    assert target.status == 503 and "no running sandbox" in target.message


def test_unreported_services(users, make_session):
    session = make_session(users["ada"], {"ide": ready(41234)})
    desktop = resolve(users["ada"], session.pk, "desktop")
    assert (desktop.status, desktop.message) == (503, "The desktop is not running in this session's sandbox.")
    assert resolve(users["ada"], session.pk, "preview-5173").message.startswith("The preview on port 5173 is not")
