"""The admin site for repos, images and sandboxes, driven through HTTP as a staff member would."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from sandboxes import tasks
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, RepoSecret, Sandbox

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:sandboxes_repo_add")
CHANGELIST_URL = reverse("admin:sandboxes_repo_changelist")


def change_url(repo: Repo) -> str:
    return reverse("admin:sandboxes_repo_change", args=[repo.pk])


def rebuild_url(repo: Repo) -> str:
    return reverse("admin:sandboxes_repo_rebuild", args=[repo.pk])


def image_url(image: RepoImage) -> str:
    return reverse("admin:sandboxes_repoimage_change", args=[image.pk])


def log_url(image_id: int, offset: int | None = None) -> str:
    url = reverse("sandboxes:image-log", args=[image_id])
    return url if offset is None else f"{url}?offset={offset}"


def repo_form(secrets: list[dict] | None = None, initial_secrets: int = 0, **fields) -> dict:
    """The POST body of the repo add/change form, with its secrets inline."""
    data = {
        "name": "shop",
        "clone_url": "https://github.com/acme/shop.git",
        "default_branch": "main",
        "environment_source": "commands",
        "setup_commands": "npm ci\n",
        "start_commands": "npm run dev\n",
        "env_vars": '{"NODE_ENV": "test"}',
        "warm_pool_size": "2",
        "rebuild_interval_minutes": "30",
        **fields,
    }
    secrets = secrets or []
    data |= {
        "secrets-TOTAL_FORMS": str(len(secrets)),
        "secrets-INITIAL_FORMS": str(initial_secrets),
        "secrets-MIN_NUM_FORMS": "0",
        "secrets-MAX_NUM_FORMS": "1000",
    }
    for i, secret in enumerate(secrets):
        data |= {f"secrets-{i}-{key}": value for key, value in secret.items()}
    return data


def make_repo(name: str = "shop", **fields) -> Repo:
    return Repo.objects.create(name=name, clone_url=f"https://github.com/acme/{name}.git", **fields)


def make_image(repo: Repo, status: str = RepoImage.Status.READY, **fields) -> RepoImage:
    now = timezone.now()
    defaults = {"queued_at": now}
    if status in (RepoImage.Status.READY, RepoImage.Status.FAILED):
        defaults |= {"finished_at": now, "duration_seconds": 42.0}
    if status == RepoImage.Status.READY:
        defaults |= {"commit_sha": "0123456789abcdef" * 2 + "01234567", "size_bytes": 250_000_000,
                     "backend": "local", "backend_ref": ""}
    return RepoImage.objects.create(repo=repo, status=status, **(defaults | fields))


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def build_calls(monkeypatch) -> list[int]:
    """What would have been sent to the workers: there is no worker in these tests."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.build_image, "delay", lambda image_id: calls.append(image_id))
    return calls


@pytest.fixture
def user_client(client, django_user_model):
    user = django_user_model.objects.create_user("pm", password="pw-for-tests-only")
    client.force_login(user)
    return client


# --- registering and editing repos -------------------------------------------------------------


def test_registering_a_repo_through_the_add_form_creates_it(admin_client):
    response = admin_client.post(ADD_URL, repo_form())

    assert response.status_code == 302
    repo = Repo.objects.get(name="shop")
    assert repo.clone_url == "https://github.com/acme/shop.git"
    assert repo.env_vars == {"NODE_ENV": "test"}
    assert repo.warm_pool_size == 2
    assert repo.setup_commands.strip() == "npm ci"


def test_an_emptied_env_box_means_no_variables(admin_client):
    response = admin_client.post(ADD_URL, repo_form(env_vars=""))

    assert response.status_code == 302
    assert Repo.objects.get(name="shop").env_vars == {}


@pytest.mark.parametrize(
    "fields,error",
    [
        ({"env_vars": "{NODE_ENV: test"}, "Enter a valid JSON."),
        ({"env_vars": '["NODE_ENV"]'}, "must be a JSON object"),
        ({"env_vars": '{"NODE_ENV": 1}'}, "The value of NODE_ENV must be a string."),
        ({"env_vars": '{"1BAD": "x"}'}, "is not a valid environment variable name"),
        ({"clone_url": "github.com/acme/shop"}, "Enter a git URL"),
    ],
)
def test_invalid_settings_are_rejected_and_nothing_is_created(admin_client, fields, error):
    response = admin_client.post(ADD_URL, repo_form(**fields))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Repo.objects.exists()


def test_the_repo_list_shows_current_image_pool_and_last_build(admin_client):
    repo = make_repo(warm_pool_size=3)
    image = make_image(repo, finished_at=timezone.now() - timedelta(hours=2))
    make_image(repo, RepoImage.Status.FAILED)
    Sandbox.objects.create(repo=repo, image=image, pooled=True, state=State.READY, backend="local")
    Sandbox.objects.create(repo=repo, image=image, pooled=True, state=State.PROVISIONING, backend="local")
    Sandbox.objects.create(repo=repo, image=image, pooled=False, state=State.READY, backend="local")

    html = admin_client.get(CHANGELIST_URL).content.decode()

    assert "0123456, 2\xa0hours old" in html
    assert "1 / 3" in html  # one ready pooled sandbox of three wanted; claimed and starting ones don't count
    assert '<td class="field-last_build">failed</td>' in html


# --- secrets -----------------------------------------------------------------------------------


def test_a_secret_is_stored_encrypted_and_never_shown_again(admin_client):
    plaintext = "ghp_s3cr3t-token-value"
    response = admin_client.post(ADD_URL, repo_form([{"name": "NPM_TOKEN", "value": plaintext}]))
    assert response.status_code == 302

    secret = RepoSecret.objects.get(repo__name="shop", name="NPM_TOKEN")
    assert plaintext not in secret.encrypted_value
    assert secret.value() == plaintext
    html = admin_client.get(change_url(secret.repo)).content.decode()
    assert "NPM_TOKEN" in html
    assert plaintext not in html
    assert secret.encrypted_value not in html


def test_leaving_a_secret_value_blank_keeps_it_and_typing_one_replaces_it(admin_client):
    repo = make_repo()
    secret = RepoSecret(repo=repo, name="NPM_TOKEN")
    secret.set_value("old-value")
    secret.save()
    existing = {"id": str(secret.pk), "repo": str(repo.pk), "name": "NPM_TOKEN"}

    response = admin_client.post(change_url(repo), repo_form([existing | {"value": ""}], initial_secrets=1))
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.value() == "old-value"

    response = admin_client.post(change_url(repo), repo_form([existing | {"value": "new-value"}], initial_secrets=1))
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.value() == "new-value"


def test_a_typed_secret_is_not_echoed_back_when_the_form_has_errors(admin_client):
    plaintext = "ghp_do-not-echo-me"
    response = admin_client.post(
        ADD_URL, repo_form([{"name": "NPM_TOKEN", "value": plaintext}], clone_url="not a url")
    )

    assert response.status_code == 200
    assert plaintext not in response.content.decode()
    assert not RepoSecret.objects.exists()


@pytest.mark.parametrize(
    "secrets,error",
    [
        ([{"name": "NPM_TOKEN", "value": ""}], "Enter the secret&#x27;s value."),
        ([{"name": "1-bad name", "value": "x"}], "is not a valid environment variable name"),
        (
            [{"name": "TOKEN", "value": "a"}, {"name": "TOKEN", "value": "b"}],
            "Please correct the duplicate data for name.",
        ),
    ],
)
def test_invalid_secrets_are_rejected(admin_client, secrets, error):
    response = admin_client.post(ADD_URL, repo_form(secrets))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Repo.objects.exists()
    assert not RepoSecret.objects.exists()


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


# --- the warm pool and sandboxes ----------------------------------------------------------------


def test_the_repo_page_shows_the_warm_pool_and_image_history(admin_client):
    repo = make_repo(warm_pool_size=2)
    old = make_image(repo, RepoImage.Status.FAILED, reason="setup changed")
    current = make_image(repo, reason="branch head moved")
    ready = Sandbox.objects.create(
        repo=repo, image=current, pooled=True, state=State.READY, backend="local", ready_at=timezone.now()
    )
    starting = Sandbox.objects.create(repo=repo, image=current, pooled=True, state=State.SYNCING, backend="local")
    claimed = Sandbox.objects.create(repo=repo, image=current, pooled=False, state=State.RUNNING, backend="local")
    gone = Sandbox.objects.create(repo=repo, image=current, pooled=True, state=State.TERMINATED, backend="local")

    html = admin_client.get(change_url(repo)).content.decode()

    assert "1 ready of 2 wanted, 1 starting" in html
    assert "kept warm until" not in html
    assert str(ready.pk)[:8] in html
    assert str(starting.pk)[:8] in html
    assert str(claimed.pk)[:8] not in html
    assert str(gone.pk)[:8] not in html
    assert image_url(old) in html and "setup changed" in html
    assert image_url(current) in html and "branch head moved" in html
    assert "238.4\xa0MB" in html


def test_the_repo_page_says_while_the_pool_keeps_a_sandbox_beyond_its_size(admin_client):
    """A session's sandbox was let go (or someone writes a prompt): a pool of size 0 holds one."""
    repo = make_repo(warm_pool_size=0)
    make_image(repo)
    Repo.objects.filter(pk=repo.pk).update(warm_wanted_until=timezone.now() + timedelta(hours=1))
    assert "At least one is kept warm until" in admin_client.get(change_url(repo)).content.decode()
    Repo.objects.filter(pk=repo.pk).update(warm_wanted_until=timezone.now() - timedelta(seconds=1))
    assert "kept warm until" not in admin_client.get(change_url(repo)).content.decode()


def test_terminate_action_queues_termination_of_live_sandboxes(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks.terminate_sandbox, "delay", lambda sandbox_id, reason: calls.append((sandbox_id, reason)))
    repo = make_repo()
    image = make_image(repo)
    live = Sandbox.objects.create(repo=repo, image=image, state=State.READY, pooled=True, backend="local")
    done = Sandbox.objects.create(repo=repo, image=image, state=State.TERMINATED, backend="local")
    data = {"action": "terminate", "_selected_action": [str(live.pk), str(done.pk)]}

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:sandboxes_sandbox_changelist"), data)

    assert response.status_code == 302
    assert calls == [(str(live.pk), "terminated by admin")]


def test_the_sandbox_and_snapshot_lists_render(admin_client):
    repo = make_repo()
    image = make_image(repo)
    sandbox = Sandbox.objects.create(repo=repo, image=image, state=State.RUNNING, backend="local",
                                     end_reason="")

    html = admin_client.get(reverse("admin:sandboxes_sandbox_changelist") + "?state__exact=running").content.decode()
    assert str(sandbox.pk)[:8] in html
    assert admin_client.get(reverse("admin:sandboxes_snapshot_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:sandboxes_sandbox_add")).status_code == 403
