"""The build log endpoint the admin's image page follows (sandboxes/views.py)."""

import pytest

from sandboxes.models import RepoImage
from tests.sandboxes.admin_pages import log_url, make_image, make_repo

pytestmark = pytest.mark.django_db


def test_the_log_endpoint_returns_the_log_from_an_offset(admin_client):
    image = make_image(make_repo(), RepoImage.Status.BUILDING, build_log="step 1\nstep 2\n")

    whole = admin_client.get(log_url(image.pk)).json()
    assert whole == {"status": "building", "status_display": "Building", "log": "step 1\nstep 2\n",
                     "offset": 14, "finished": False, "reset": False}

    RepoImage.objects.filter(pk=image.pk).update(build_log="step 1\nstep 2\nstep 3\n", status="ready")
    rest = admin_client.get(log_url(image.pk, whole["offset"])).json()
    assert rest["log"] == "step 3\n"
    assert rest["offset"] == 21
    assert rest["finished"] is True


def test_the_log_endpoint_resends_a_log_that_restarted(admin_client):
    image = make_image(make_repo(), RepoImage.Status.BUILDING, build_log="retry\n")

    data = admin_client.get(log_url(image.pk, 500)).json()

    assert data["reset"] is True
    assert data["log"] == "retry\n"
    assert data["offset"] == 6


def test_the_log_endpoint_counts_characters_not_bytes(admin_client):
    image = make_image(make_repo(), RepoImage.Status.BUILDING, build_log="✓ déjà\n")

    data = admin_client.get(log_url(image.pk, 2)).json()

    assert data["log"] == "déjà\n"
    assert data["offset"] == 7


def test_the_log_endpoint_404s_for_an_unknown_image(admin_client):
    response = admin_client.get(log_url(987654))

    assert response.status_code == 404
    assert response.json() == {"error": "no such image"}


def test_the_log_endpoint_rejects_a_bad_offset(admin_client):
    image = make_image(make_repo(), RepoImage.Status.BUILDING)

    assert admin_client.get(log_url(image.pk) + "?offset=abc").status_code == 400
