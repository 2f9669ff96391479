"""What a device receives: through the real Web Push wire protocol, to a push service double that checks the VAPID
signature and decrypts the message as the browser would (tests/support/push_service.py)."""

import logging

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from notifications import tasks
from notifications.models import PushSubscription
from sessions import bridge_events
from sessions.models import Prompt, Session
from sessions.signals import run_finished
from tests.support.push_service import Browser
from tests.support.rows import owned_session, repo_with_image

pytestmark = pytest.mark.django_db


def subscribe(user: User, browser) -> PushSubscription:
    data = browser.subscription()
    return PushSubscription.objects.create(user=user, endpoint=data["endpoint"], **data["keys"])


def finished_prompt(session: Session, author: User, status: str) -> Prompt:
    return Prompt.objects.create(session=session, author=author, text="secret plans for the invoice table",
                                 position=session.prompts.count() + 1, status=status)


@pytest.mark.parametrize(("status", "error", "body"), [
    (Prompt.Status.DONE, "", "Done"),
    (Prompt.Status.CANCELLED, "", "Stopped"),
    (Prompt.Status.FAILED, "SandboxEnded: the sandbox ended (out of memory).", "Failed: SandboxEnded: the sandbox "
                                                                                 "ended (out of memory)."),
])
def test_a_finished_run_reaches_every_device_of_its_author_signed_and_encrypted(
        push_service, eager, user, other_user, settings, status, error, body):
    session = owned_session(repo_with_image(), user, title="Fix the invoice table", error=error)
    phone, laptop = push_service.browser("phone"), push_service.browser("laptop")
    subscribe(user, phone), subscribe(user, laptop)
    subscribe(other_user, push_service.browser("someone-else"))  # not the prompt's author: not told
    prompt = finished_prompt(session, user, status)

    run_finished.send(Session, session=session, prompt=prompt)

    assert sorted(d.path for d in push_service.deliveries) == ["/push/laptop", "/push/phone"]
    for delivery in push_service.deliveries:
        assert delivery.status == 201, delivery.problem
        assert delivery.claims["aud"] == push_service.origin and delivery.claims["sub"] == settings.VAPID_SUBJECT
        assert delivery.message == {"title": "Fix the invoice table", "body": body,
                                    "url": f"/sessions/{session.pk}/", "tag": f"session-{session.pk}"}


def test_nothing_is_sent_for_an_open_prompt_an_untitled_session_says_its_number(push_service, eager, user):
    session = owned_session(repo_with_image(), user)
    subscribe(user, push_service.browser("phone"))
    run_finished.send(Session, session=session, prompt=finished_prompt(session, user, Prompt.Status.RUNNING))
    assert push_service.deliveries == []
    run_finished.send(Session, session=session, prompt=finished_prompt(session, user, Prompt.Status.DONE))
    assert push_service.deliveries[0].message["title"] == f"Session {session.pk}"


def test_a_person_no_longer_in_the_session_is_not_told(push_service, eager, user, other_user):
    session = owned_session(repo_with_image(), other_user, title="Theirs now")
    subscribe(user, push_service.browser("phone"))
    run_finished.send(Session, session=session, prompt=finished_prompt(session, user, Prompt.Status.DONE))
    assert push_service.deliveries == []


def test_a_subscription_the_push_service_says_is_gone_is_deleted_and_the_others_still_get_it(
        push_service, eager, user, caplog):
    session = owned_session(repo_with_image(), user, title="Fix it")
    gone, kept = subscribe(user, push_service.browser("gone")), subscribe(user, push_service.browser("kept"))
    push_service.answers["/push/gone"] = 410
    with caplog.at_level(logging.INFO, logger="notifications"):
        assert tasks.notify_run_finished(finished_prompt(session, user, Prompt.Status.DONE).pk) == 1
    assert list(PushSubscription.objects.all()) == [kept]
    assert f"push subscription {gone.pk} at 127.0.0.1:" in caplog.text and "/push/gone" not in caplog.text
    push_service.answers["/push/kept"] = 404
    tasks.notify_run_finished(finished_prompt(session, user, Prompt.Status.DONE).pk)
    assert not PushSubscription.objects.exists()


def test_another_failure_is_logged_without_the_endpoints_path_or_keys_and_the_subscription_kept(
        push_service, eager, user, caplog):
    session = owned_session(repo_with_image(), user, title="Fix it")
    subscription = subscribe(user, push_service.browser("a-secret-path-0f3c9"))
    push_service.answers["/push/a-secret-path-0f3c9"] = 500
    with caplog.at_level(logging.DEBUG):
        assert tasks.notify_run_finished(finished_prompt(session, user, Prompt.Status.DONE).pk) == 0
    assert PushSubscription.objects.filter(pk=subscription.pk).exists()
    assert f"push to subscription {subscription.pk} at 127.0.0.1:" in caplog.text and "500" in caplog.text
    for secret in ("a-secret-path-0f3c9", subscription.auth, subscription.p256dh, "vapid t=",
                   django_settings.VAPID_PRIVATE_KEY):
        assert secret not in caplog.text


def test_an_unreachable_push_service_is_logged_and_nothing_else_fails(eager, user, settings, caplog):
    settings.WEB_PUSH_ALLOW_LOOPBACK_HTTP = True
    session = owned_session(repo_with_image(), user, title="Fix it")
    PushSubscription.objects.create(user=user, endpoint="http://127.0.0.1:9/push/nobody-home",
                                    p256dh=Browser(endpoint="").subscription()["keys"]["p256dh"],
                                    auth="AAAAAAAAAAAAAAAAAAAAAA")
    assert tasks.notify_run_finished(finished_prompt(session, user, Prompt.Status.DONE).pk) == 0
    assert "ConnectionError" in caplog.text and "nobody-home" not in caplog.text


def test_an_agent_error_tells_the_author_of_the_running_prompt_once_committed(
        push_service, eager, user, other_user, django_capture_on_commit_callbacks):
    session = owned_session(repo_with_image(), other_user, title="Fix the invoice table")
    session.add_member(user)
    subscribe(user, push_service.browser("phone"))
    subscribe(other_user, push_service.browser("creator"))
    finished_prompt(session, user, Prompt.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        bridge_events.apply_bridge_event(session, "error", {"name": "ProviderError", "message": "rate limited " * 40})
        assert push_service.deliveries == []  # not before the event is committed
    for callback in callbacks:
        callback()
    [delivery] = push_service.deliveries
    assert delivery.path == "/push/phone"
    body = delivery.message["body"]
    assert body.startswith("Error: ProviderError: rate limited rate limited") and len(body) <= 7 + 200
    assert delivery.message["title"] == "Fix the invoice table" and "secret plans" not in str(delivery.message)


def test_an_agent_error_with_no_running_prompt_tells_the_sessions_creator(push_service, eager, user,
                                                                          django_capture_on_commit_callbacks):
    session = owned_session(repo_with_image(), user, title="Fix it")
    subscribe(user, push_service.browser("phone"))
    with django_capture_on_commit_callbacks(execute=True):
        bridge_events.apply_bridge_event(session, "error", {"name": "BridgeError", "message": "OpenCode exited"})
    assert push_service.deliveries[0].message["body"] == "Error: BridgeError: OpenCode exited"


def test_nobody_subscribed_sends_no_task(enqueued, user):
    session = owned_session(repo_with_image(), user, title="Fix it")
    run_finished.send(Session, session=session, prompt=finished_prompt(session, user, Prompt.Status.DONE))
    bridge_events.apply_bridge_event(session, "error", {"name": "E", "message": "m"})
    assert not any(name.startswith("notifications.") for name in enqueued)


def test_without_vapid_keys_nothing_is_sent(push_service, eager, user, settings):
    settings.VAPID_PRIVATE_KEY = settings.VAPID_PUBLIC_KEY = ""
    session = owned_session(repo_with_image(), user, title="Fix it")
    subscribe(user, push_service.browser("phone"))
    assert tasks.notify_run_finished(finished_prompt(session, user, Prompt.Status.DONE).pk) == 0
    assert push_service.deliveries == []
