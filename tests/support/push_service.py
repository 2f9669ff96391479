"""A push service double on the host's loopback that speaks Web Push as a real one does: it takes pywebpush's
POST (RFC 8030), checks its VAPID header (RFC 8292: `vapid t=<JWT>, k=<public key>`, the JWT signed ES256 by that
key for this origin) and decrypts its aes128gcm body (RFC 8291) with the browser's private key, as the browser
would. A test reads what a device would show; `answer` makes it refuse (410: the subscription is gone)."""

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One browser's subscription: its endpoint at the double, its P-256 key pair and its auth secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict:
        """What PushSubscription.toJSON() gives in a browser."""
        public = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                            serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}


@dataclass
class Delivery:
    path: str
    status: int
    headers: dict
    claims: dict | None = None  # the VAPID JWT's, once verified
    message: dict | None = None  # the decrypted notification
    problem: str = ""  # why it was refused


class PushService:
    def __init__(self, vapid_public_key: str):
        """`vapid_public_key`: the key the browsers subscribed with (the platform's VAPID_PUBLIC_KEY)."""
        self.vapid_public_key = vapid_public_key
        self.browsers: dict[str, Browser] = {}
        self.answers: dict[str, int] = {}  # path -> status to answer instead of 201
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery = service.receive(self.path, dict(self.headers.items()), body)
                with service.lock:
                    service.deliveries.append(delivery)
                self.send_response(delivery.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def browser(self, name: str) -> Browser:
        """A new browser subscribed at /push/<name>."""
        browser = Browser(endpoint=f"{self.origin}/push/{name}")
        self.browsers[f"/push/{name}"] = browser
        return browser

    def receive(self, path: str, headers: dict, body: bytes) -> Delivery:
        headers = {k.lower(): v for k, v in headers.items()}
        delivery = Delivery(path=path, status=201, headers=headers)
        browser = self.browsers.get(path)
        try:
            if browser is None:
                raise ValueError("no such subscription")
            delivery.claims = self.verify_vapid(headers.get("authorization", ""))
            if headers.get("content-encoding") != "aes128gcm" or not headers.get("ttl", "").isdigit():
                raise ValueError(f"not an RFC 8291 message: {headers}")
            plain = http_ece.decrypt(body, private_key=browser.private_key, auth_secret=browser.auth,
                                     version="aes128gcm")
            delivery.message = json.loads(plain)
        except (ValueError, InvalidSignature, KeyError) as e:
            delivery.status, delivery.problem = (404 if browser is None else 400), f"{type(e).__name__}: {e}"
            return delivery
        delivery.status = self.answers.get(path, 201)
        return delivery

    def verify_vapid(self, authorization: str) -> dict:
        """RFC 8292: the JWT is signed ES256 by the key in k=, which is the one the browser subscribed with."""
        scheme, _, params = authorization.partition(" ")
        if scheme != "vapid":
            raise ValueError(f"not a vapid Authorization: {authorization[:20]!r}")
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        if fields["k"] != self.vapid_public_key:
            raise ValueError("signed by another key than the one the browser subscribed with")
        header, payload, signature = fields["t"].split(".")
        if json.loads(b64url_decode(header)) != {"typ": "JWT", "alg": "ES256"}:
            raise ValueError(f"not an ES256 JWT: {b64url_decode(header)!r}")
        raw = b64url_decode(signature)
        if len(raw) != 64:
            raise ValueError("an ES256 signature is r and s, 32 bytes each")
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(fields["k"]))
        key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                   f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(b64url_decode(payload))
        if claims.get("aud") != self.origin:
            raise ValueError(f"aud {claims.get('aud')!r} is not this push service's origin")
        if not time.time() < claims["exp"] <= time.time() + 24 * 3600:
            raise ValueError("exp is past, or more than 24 hours away")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub is no contact")
        return claims

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
