"""The subscription API: the signed-in person's own devices, CSRF-protected, and every bad request a clear 400 that
changes nothing."""

import json

import pytest
from django.test import Client

from notifications import views
from notifications.models import PushSubscription
from tests.support.push_service import Browser

pytestmark = pytest.mark.django_db

SUBSCRIBE, UNSUBSCRIBE = "/notifications/subscribe", "/notifications/unsubscribe"
FCM = "https://fcm.googleapis.com/fcm/send/dXNlci1kZXZpY2UtMQ"


def signed_in(user, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def post(client: Client, path: str, body, **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data, content_type="application/json", **headers)


def test_a_person_subscribes_a_device_and_again_updates_its_keys(user):
    client = signed_in(user)
    first = Browser(endpoint=FCM).subscription()
    response = post(client, SUBSCRIBE, first, HTTP_USER_AGENT="Mozilla/5.0 (iPhone)")
    assert response.status_code == 201 and response.json() == {"subscribed": True}
    again = Browser(endpoint=FCM).subscription()
    assert post(client, SUBSCRIBE, again).status_code == 200
    stored = PushSubscription.objects.get()
    assert (stored.user, stored.endpoint, stored.p256dh, stored.auth) == (
        user, FCM, again["keys"]["p256dh"], again["keys"]["auth"])
    assert post(client, UNSUBSCRIBE, {"endpoint": FCM}).json() == {"subscribed": False}
    assert not PushSubscription.objects.exists()


def keys(**changes) -> dict:
    data = Browser(endpoint=FCM).subscription()
    data["keys"].update(changes)
    return data


@pytest.mark.parametrize(("body", "says"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    ([1, 2], "JSON object"),
    ({"endpoint": FCM}, "no keys"),
    ({"endpoint": FCM, "keys": "p256dh"}, "no keys"),
    ({**keys(), "endpoint": None}, "no endpoint"),
    (keys(p256dh=None), "keys.p256dh"),
    (keys(auth=""), "keys.auth"),
    (keys(auth="AAAA"), "keys.auth must be 16 bytes"),
    (keys(auth="!!!!!!!!!!!!!!!!!!!!!!"), "keys.auth"),
    (keys(p256dh="BA" + "A" * 85), "not a P-256 public key"),  # 65 bytes, not a point on the curve
    (keys(p256dh="A" * 5000), "larger than 4096 bytes"),
    ({**keys(), "endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "must be an https URL"),
    ({**keys(), "endpoint": "http://127.0.0.1:9/push/x"}, "must be an https URL"),  # loopback: only with DEBUG
    ({**keys(), "endpoint": "https://10.0.0.5/internal"}, "not at a push service"),
    ({**keys(), "endpoint": "https://evil-fcm.googleapis.com.example/x"}, "not at a push service"),
    ({**keys(), "endpoint": "https://user:pw@fcm.googleapis.com/x"}, "not a push service's URL"),
    ({**keys(), "endpoint": "https://fcm.googleapis.com:99999/x"}, "not a URL"),
    ({**keys(), "endpoint": "https://fcm.googleapis.com/" + "a" * 1000}, "longer than 1000"),
])
def test_a_bad_subscription_is_a_clear_400_and_nothing_is_stored(user, body, says):
    response = post(signed_in(user), SUBSCRIBE, body)
    assert response.status_code == 400 and says in response.json()["error"], response.content
    assert not PushSubscription.objects.exists()


def test_loopback_http_is_taken_where_allowed(user, settings):
    settings.WEB_PUSH_ALLOW_LOOPBACK_HTTP = True
    for endpoint in ("http://127.0.0.1:9/push/a", "http://[::1]:9/push/b", "http://localhost:9/push/c"):
        assert post(signed_in(user), SUBSCRIBE, Browser(endpoint=endpoint).subscription()).status_code == 201
    assert post(signed_in(user), SUBSCRIBE, Browser(endpoint="http://10.1.1.1/x").subscription()).status_code == 400


def test_another_persons_subscription_can_be_neither_taken_nor_removed(user, other_user):
    theirs = Browser(endpoint=FCM).subscription()
    assert post(signed_in(other_user), SUBSCRIBE, theirs).status_code == 201
    before = list(PushSubscription.objects.values())
    mine = signed_in(user)
    taken = post(mine, SUBSCRIBE, Browser(endpoint=FCM).subscription())
    assert taken.status_code == 409 and "another account" in taken.json()["error"]
    removed = post(mine, UNSUBSCRIBE, {"endpoint": FCM})
    assert removed.status_code == 404  # as for an endpoint nobody has: nothing told apart
    assert post(mine, UNSUBSCRIBE, {"endpoint": FCM + "-nobodys"}).status_code == 404
    assert list(PushSubscription.objects.values()) == before


@pytest.mark.parametrize("body", [b"[]", b"nope", b'{"endpoint": 5}', b"{}"])
def test_a_bad_unsubscribe_is_a_400(user, body):
    PushSubscription.objects.create(user=user, endpoint=FCM, p256dh="x", auth="y")
    assert post(signed_in(user), UNSUBSCRIBE, body).status_code == 400
    assert PushSubscription.objects.count() == 1


def test_signed_out_or_without_the_csrf_token_nothing_changes(user):
    PushSubscription.objects.create(user=user, endpoint=FCM, p256dh="x", auth="y")
    new = Browser(endpoint=FCM + "-new").subscription()
    for path, body in ((SUBSCRIBE, new), (UNSUBSCRIBE, {"endpoint": FCM})):
        response = post(Client(), path, body)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert post(signed_in(user, csrf=True), path, body).status_code == 403
    assert list(PushSubscription.objects.values_list("endpoint", flat=True)) == [FCM]


def test_the_api_takes_posts_alone(user):
    for path in (SUBSCRIBE, UNSUBSCRIBE):
        assert signed_in(user).get(path).status_code == 405


def test_without_vapid_keys_subscribing_says_so(user, settings):
    settings.VAPID_PUBLIC_KEY = ""
    response = post(signed_in(user), SUBSCRIBE, Browser(endpoint=FCM).subscription())
    assert response.status_code == 503 and "VAPID_PRIVATE_KEY" in response.json()["error"]


def test_the_settings_page_gives_the_browser_the_public_key_alone(user, settings):
    page = signed_in(user).get("/notifications/").content.decode()
    assert f'data-public-key="{settings.VAPID_PUBLIC_KEY}"' in page and "Notify me on this device" in page
    assert settings.VAPID_PRIVATE_KEY not in page


def test_a_person_keeps_at_most_so_many_devices_the_newest_ones(user, monkeypatch):
    monkeypatch.setattr(views, "MAX_DEVICES", 3)
    client = signed_in(user)
    endpoints = [f"{FCM}-{n}" for n in range(5)]
    for endpoint in endpoints:
        assert post(client, SUBSCRIBE, Browser(endpoint=endpoint).subscription()).status_code == 201
    assert set(PushSubscription.objects.values_list("endpoint", flat=True)) == set(endpoints[2:])
