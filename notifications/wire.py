"""The two wire formats of Web Push: what a browser sends when it subscribes, and what its service worker gets."""

import base64
import binascii
import ipaddress
import json
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from notifications.models import MAX_ENDPOINT_LENGTH, MAX_USER_AGENT_LENGTH

MAX_BODY_BYTES = 4096  # a subscription is about 400 bytes
LOOPBACK_NAMES = {"localhost"}


class BadSubscription(ValueError):
    """The request is not a subscription this platform takes; the message says why, for the person."""


def decode_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: object) -> str:
    """The endpoint, if the worker may post to it: https on a known push service (WEB_PUSH_SERVICE_HOSTS), or
    loopback where allowed (DEBUG, tests). The worker posts wherever it says, so nothing else is let in."""
    if not isinstance(endpoint, str) or not endpoint:
        raise BadSubscription("The subscription has no endpoint.")
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise BadSubscription(f"The endpoint is longer than {MAX_ENDPOINT_LENGTH} characters.")
    try:
        url = urlsplit(endpoint)
        host = (url.hostname or "").lower()
        url.port  # noqa: B018 (raises ValueError for a port that is no number)
    except ValueError:
        raise BadSubscription("The endpoint is not a URL.") from None
    if not host or url.username is not None or url.password is not None or url.fragment:
        raise BadSubscription("The endpoint is not a push service's URL.")
    if is_loopback(host) and settings.WEB_PUSH_ALLOW_LOOPBACK_HTTP and url.scheme in ("http", "https"):
        return endpoint
    if url.scheme != "https":
        raise BadSubscription("The endpoint must be an https URL.")
    if not any(host == known or host.endswith("." + known) for known in settings.WEB_PUSH_SERVICE_HOSTS):
        raise BadSubscription("The endpoint is not at a push service this platform sends to.")
    return endpoint


def check_key(value: object, name: str, length: int) -> str:
    """A base64url key of `length` bytes, without its padding."""
    if not isinstance(value, str) or not value or len(value) > 2 * length:
        raise BadSubscription(f"keys.{name} must be a base64url string of {length} bytes.")
    try:
        raw = decode_b64url(value)
    except (binascii.Error, ValueError):
        raise BadSubscription(f"keys.{name} is not base64url.") from None
    if len(raw) != length:
        raise BadSubscription(f"keys.{name} must be {length} bytes, not {len(raw)}.")
    return value.rstrip("=")


@dataclass(frozen=True)
class SubscriptionRequest:
    """A browser's PushSubscription.toJSON(): {"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}."""

    endpoint: str
    p256dh: str
    auth: str

    @classmethod
    def parse(cls, body: bytes) -> "SubscriptionRequest":
        data = parse_object(body)
        keys = data.get("keys")
        if not isinstance(keys, dict):
            raise BadSubscription("The subscription has no keys (p256dh and auth).")
        p256dh = check_key(keys.get("p256dh"), "p256dh", 65)
        try:  # the browser's public key on P-256: what the notification is encrypted to
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), decode_b64url(p256dh))
        except ValueError:
            raise BadSubscription("keys.p256dh is not a P-256 public key.") from None
        return cls(endpoint=check_endpoint(data.get("endpoint")), p256dh=p256dh, auth=check_key(keys.get("auth"),
                                                                                                 "auth", 16))


def parse_object(body: bytes) -> dict:
    if len(body) > MAX_BODY_BYTES:
        raise BadSubscription(f"The request is larger than {MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadSubscription("The request is not JSON.") from None
    if not isinstance(data, dict):
        raise BadSubscription("The request must be a JSON object.")
    return data


def parse_endpoint(body: bytes) -> str:
    """{"endpoint": ...}: the subscription to remove."""
    endpoint = parse_object(body).get("endpoint")
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise BadSubscription("The request names no endpoint.")
    return endpoint


def user_agent(header: str) -> str:
    return header[:MAX_USER_AGENT_LENGTH]


@dataclass(frozen=True)
class Notification:
    """What the service worker (templates/pwa/sw.js) shows: nothing but the session's title, an outcome and the
    session page's path. `tag` makes a later notification of the same session replace the earlier one."""

    title: str
    body: str
    url: str
    tag: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()
