"""The installable web app's routes (inspect_site/pwa.py) and the VAPID keys (inspect_site/keys.py)."""

import struct

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from inspect_site import keys

pytestmark = pytest.mark.django_db


def test_the_manifest_makes_the_platform_installable_for_anyone():
    response = Client().get("/manifest.webmanifest")
    assert response.status_code == 200 and response["Content-Type"] == "application/manifest+json"
    manifest = response.json()
    assert (manifest["name"], manifest["short_name"], manifest["start_url"], manifest["display"]) == (
        "Inspect", "Inspect", "/", "standalone")
    assert manifest["theme_color"].startswith("#")
    sizes = set()
    for icon in manifest["icons"]:
        path = finders.find(icon["src"].removeprefix("/static/"))
        data = open(path, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert icon["sizes"] == f"{width}x{height}" and icon["type"] == "image/png"
        sizes.add(width)
    assert sizes == {192, 512}


def test_the_service_worker_is_served_at_the_root_uncached_for_anyone():
    response = Client().get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert "no-cache" in response["Cache-Control"]
    script = response.content.decode()
    assert 'const STATIC_PREFIX = "/static/"' in script and 'const OFFLINE_PATH = "/offline"' in script
    assert "csrf" not in script.lower()


def test_the_offline_page_is_the_same_for_everyone(user):
    signed_in = Client()
    signed_in.force_login(user)
    anonymous, theirs = Client().get("/offline"), signed_in.get("/offline")
    assert anonymous.status_code == theirs.status_code == 200
    assert user.username not in theirs.content.decode() and "You are offline" in theirs.content.decode()
    assert "csrfmiddlewaretoken" not in theirs.content.decode()


def test_every_page_links_the_manifest_and_the_service_worker(user):
    client = Client()
    client.force_login(user)
    page = client.get("/").content.decode()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert "pwa/register.js" in page and "interactive-widget=resizes-content" in page


def test_vapid_keys_are_made_once_kept_and_the_public_one_worked_out(tmp_path):
    private, public = keys.vapid_keys({}, tmp_path, production=False)
    assert (tmp_path / "vapid_private_key").stat().st_mode & 0o777 == 0o600
    assert keys.vapid_keys({}, tmp_path, production=False) == (private, public)
    assert len(keys.b64url_decode(public)) == 65 and keys.b64url_decode(public)[0] == 4
    given = keys.new_vapid_private_key()
    assert keys.vapid_keys({"VAPID_PRIVATE_KEY": given}, tmp_path, False) == (given, keys.vapid_public_key(given))


def test_a_public_key_that_is_not_the_private_keys_is_refused(tmp_path):
    environ = {"VAPID_PRIVATE_KEY": keys.new_vapid_private_key(),
               "VAPID_PUBLIC_KEY": keys.vapid_public_key(keys.new_vapid_private_key())}
    with pytest.raises(ImproperlyConfigured, match="VAPID_PUBLIC_KEY is not the public key"):
        keys.vapid_keys(environ, tmp_path, False)
    with pytest.raises(ImproperlyConfigured, match="VAPID_PRIVATE_KEY is not"):
        keys.vapid_keys({"VAPID_PRIVATE_KEY": "short"}, tmp_path, False)


def test_in_production_web_push_is_off_unless_its_key_is_given(tmp_path):
    assert keys.vapid_keys({}, tmp_path, production=True) == ("", "")
    assert not (tmp_path / "vapid_private_key").exists()
    given = keys.new_vapid_private_key()
    assert keys.vapid_keys({"VAPID_PRIVATE_KEY": given}, tmp_path, True)[0] == given
