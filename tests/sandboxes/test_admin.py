"""The admin site for repos, their secrets, warm pools and sandboxes, driven through HTTP as a staff member would
(builds and their logs: test_admin_builds.py)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sandboxes import tasks
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, RepoSecret, Sandbox
from tests.sandboxes.admin_pages import (
    ADD_URL,
    CHANGELIST_URL,
    change_url,
    image_url,
    make_image,
    make_repo,
    repo_form,
)

pytestmark = pytest.mark.django_db


# --- registering and editing repos -------------------------------------------------------------


def test_registering_a_repo_through_the_add_form_creates_it(admin_client):
    response = admin_client.post(ADD_URL, repo_form())

    assert response.status_code == 302
    repo = Repo.objects.get(name="shop")
    assert repo.clone_url == "https://github.com/acme/shop.git"
    assert repo.env_vars == {"NODE_ENV": "test"}
    assert repo.warm_pool_size == 2
    assert repo.setup_commands.strip() == "npm ci"


def test_an_admin_says_who_may_use_a_repo_on_its_page(admin_client, django_user_model):
    from django.contrib.auth.models import Group

    ada = django_user_model.objects.create_user("ada")
    payroll = Group.objects.create(name="payroll-team")
    page = admin_client.get(ADD_URL).content.decode()
    assert "Who may use it" in page and 'name="allowed_users"' in page and 'name="allowed_groups"' in page

    response = admin_client.post(ADD_URL, repo_form(access="listed", allowed_users=[ada.pk],
                                                    allowed_groups=[payroll.pk]))
    assert response.status_code == 302
    repo = Repo.objects.get(name="shop")
    assert repo.access == Repo.Access.LISTED
    assert list(repo.allowed_users.all()) == [ada] and list(repo.allowed_groups.all()) == [payroll]
    assert repo.usable_by(ada) and not repo.usable_by(django_user_model.objects.create_user("eve"))


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
        ({"clone_url": "https://x-access-token:ghp_secret@github.com/acme/shop.git"}, "Leave credentials out"),
        ({"clone_url": "https://ghp_secret@github.com/acme/shop.git"}, "Leave credentials out"),
        ({"clone_url": "ssh://git:hunter2@example.com/shop.git"}, "Leave credentials out"),
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
