"""The admin site's builds: rebuilding a repo's image now, images and their build logs, and who may do and
see that; driven through HTTP as a staff member would."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox
from tests.sandboxes.admin_pages import (
    CHANGELIST_URL,
    change_url,
    image_url,
    log_url,
    make_image,
    make_repo,
    page_messages,
    rebuild_url,
)

pytestmark = pytest.mark.django_db


# --- rebuild now -------------------------------------------------------------------------------


def test_rebuild_now_queues_one_build_and_a_second_click_queues_none(
    admin_client, build_calls, django_capture_on_commit_callbacks
):
    repo = make_repo()

    with django_capture_on_commit_callbacks(execute=True):
        first = admin_client.post(rebuild_url(repo))
    image = RepoImage.objects.get(repo=repo)
    assert image.status == RepoImage.Status.QUEUED
    assert image.reason == "rebuild requested by admin"
    assert first.status_code == 302
    assert first["Location"] == image_url(image)
    assert build_calls == [image.pk]

    with django_capture_on_commit_callbacks(execute=True):
        second = admin_client.post(rebuild_url(repo), follow=True)
    assert RepoImage.objects.filter(repo=repo).count() == 1
    assert build_calls == [image.pk]
    assert second.redirect_chain[-1][0] == image_url(image)
    assert any("a build is already running" in m for m in page_messages(second))


def test_rebuild_now_builds_again_once_the_previous_build_finished(
    admin_client, build_calls, django_capture_on_commit_callbacks
):
    repo = make_repo()
    make_image(repo, RepoImage.Status.READY)

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(rebuild_url(repo))

    queued = RepoImage.objects.get(repo=repo, status=RepoImage.Status.QUEUED)
    assert build_calls == [queued.pk]


def test_rebuild_now_is_post_only(admin_client, build_calls):
    repo = make_repo()

    assert admin_client.get(rebuild_url(repo)).status_code == 405
    assert not RepoImage.objects.exists()


def test_the_repo_page_has_a_rebuild_button(admin_client):
    repo = make_repo()

    html = admin_client.get(change_url(repo)).content.decode()

    assert f'action="{rebuild_url(repo)}"' in html
    assert "Rebuild now" in html


def test_rebuild_now_list_action_queues_one_build_per_repo(
    admin_client, build_calls, django_capture_on_commit_callbacks
):
    shop, blog = make_repo("shop"), make_repo("blog")
    busy = make_repo("busy")
    running = make_image(busy, RepoImage.Status.BUILDING)
    data = {"action": "rebuild_now", "_selected_action": [str(shop.pk), str(blog.pk), str(busy.pk)]}

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(CHANGELIST_URL, data, follow=True)

    assert RepoImage.objects.filter(status=RepoImage.Status.QUEUED).count() == 2
    assert sorted(build_calls) == sorted(
        RepoImage.objects.filter(status=RepoImage.Status.QUEUED).values_list("pk", flat=True)
    )
    assert running.pk not in build_calls
    assert any("busy: a build is already running" in m for m in page_messages(response))


# --- images and their build logs ---------------------------------------------------------------


def test_the_image_page_shows_the_build_log_and_follows_an_active_build(admin_client):
    repo = make_repo()
    image = make_image(repo, RepoImage.Status.BUILDING, build_log="$ npm ci\nadded 812 packages <ok>\n")

    html = admin_client.get(image_url(image)).content.decode()

    assert "added 812 packages &lt;ok&gt;" in html
    assert 'id="build-log"' in html
    assert f'data-url="{log_url(image.pk)}"' in html
    assert f'data-offset="{len(image.build_log)}"' in html
    assert "admin-sandboxes/build-log.js" in html
    assert 'name="_save"' not in html  # images are immutable


def test_a_finished_image_page_does_not_poll(admin_client):
    image = make_image(make_repo(), RepoImage.Status.FAILED, build_log="boom\n", error="exit 1")

    html = admin_client.get(image_url(image)).content.decode()

    assert "boom" in html
    assert "build-log.js" not in html


def test_images_cannot_be_added_or_edited(admin_client):
    image = make_image(make_repo(), RepoImage.Status.READY, reason="scheduled")

    assert admin_client.get(reverse("admin:sandboxes_repoimage_add")).status_code == 403
    response = admin_client.post(image_url(image), {"reason": "edited", "status": "failed"})
    assert response.status_code == 403
    image.refresh_from_db()
    assert (image.reason, image.status) == ("scheduled", RepoImage.Status.READY)


def test_only_failed_images_can_be_deleted(admin_client):
    repo = make_repo()
    ready = make_image(repo, RepoImage.Status.READY)
    failed = make_image(repo, RepoImage.Status.FAILED)

    def delete(image: RepoImage):
        return admin_client.post(reverse("admin:sandboxes_repoimage_delete", args=[image.pk]), {"post": "yes"})

    assert delete(ready).status_code == 403
    assert delete(failed).status_code == 302

    assert list(RepoImage.objects.values_list("pk", flat=True)) == [ready.pk]


def test_deleting_a_repo_deletes_its_images_and_sandboxes(admin_client):
    repo = make_repo()
    image = make_image(repo)
    Sandbox.objects.create(repo=repo, image=image, state=State.TERMINATED, backend="local")

    response = admin_client.post(reverse("admin:sandboxes_repo_delete", args=[repo.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Repo.objects.exists()
    assert not RepoImage.objects.exists()
    assert not Sandbox.objects.exists()


def test_the_image_list_filters_by_status(admin_client):
    repo = make_repo()
    make_image(repo, RepoImage.Status.READY, reason="branch head moved")
    make_image(repo, RepoImage.Status.FAILED, reason="setup changed")

    html = admin_client.get(reverse("admin:sandboxes_repoimage_changelist") + "?status__exact=failed").content.decode()

    assert "setup changed" in html
    assert "branch head moved" not in html


# --- who may see all this ----------------------------------------------------------------------


def test_a_signed_in_non_staff_user_gets_403_on_the_log_and_no_admin_pages(user_client, build_calls):
    repo = make_repo()
    image = make_image(repo, RepoImage.Status.BUILDING, build_log="secret-ish output\n")

    response = user_client.get(log_url(image.pk))
    assert response.status_code == 403
    assert "secret-ish output" not in response.content.decode()

    for url in (CHANGELIST_URL, change_url(repo), image_url(image)):
        response = user_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    user_client.post(rebuild_url(repo))
    assert RepoImage.objects.count() == 1
    assert build_calls == []


def test_staff_without_repo_permissions_cannot_rebuild_or_read_logs(client, build_calls):
    staff = User.objects.create_user("ops", password="pw-for-tests-only", is_staff=True)
    client.force_login(staff)
    repo = make_repo()
    image = make_image(repo, RepoImage.Status.BUILDING)

    assert client.get(CHANGELIST_URL).status_code == 403
    assert client.post(rebuild_url(repo)).status_code == 403
    assert client.get(log_url(image.pk)).status_code == 403
    assert RepoImage.objects.count() == 1

    staff.user_permissions.add(Permission.objects.get(codename="view_repoimage"))
    assert client.get(log_url(image.pk)).status_code == 200


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    image = make_image(make_repo(), RepoImage.Status.BUILDING)

    response = client.get(log_url(image.pk))

    assert response.status_code == 302
    assert "login" in response["Location"]
