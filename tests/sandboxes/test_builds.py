"""Image builds through the database, with the real local backend and real git repos."""

import threading

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from sandboxes import builds
from sandboxes.models import Repo, RepoImage, RepoSecret

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


def make_repo(git_repo, **fields) -> Repo:
    defaults = {"name": "demo", "clone_url": git_repo.url, "setup_commands": "echo setting up > setup.txt"}
    return Repo.objects.create(**{**defaults, **fields})


def build(repo: Repo) -> RepoImage:
    image, created = repo.request_build("test")
    assert created
    return builds.run_build(image.pk)


def test_a_build_records_commit_log_size_and_duration(git_repo):
    repo = make_repo(git_repo)
    image = build(repo)
    assert image.status == RepoImage.Status.READY
    assert image.commit_sha == git_repo.head()
    assert "$ echo setting up > setup.txt" in image.build_log
    assert image.size_bytes > 0 and image.duration_seconds > 0
    assert repo.current_image() == image


def test_a_failing_setup_keeps_its_log_and_the_previous_image_in_service(git_repo):
    repo = make_repo(git_repo)
    good = build(repo)
    repo.setup_commands = "echo trying\nfalse"
    repo.save()
    bad = build(repo)
    assert bad.status == RepoImage.Status.FAILED
    assert "trying" in bad.build_log and "exit code 1" in bad.error
    assert repo.current_image() == good


def test_an_unreachable_clone_url_fails_the_build_with_a_reason(git_repo, open_tmp):
    repo = make_repo(git_repo, clone_url=f"file://{open_tmp}/missing.git")
    image = build(repo)
    assert image.status == RepoImage.Status.FAILED
    assert "git clone failed" in image.error
    assert repo.current_image() is None


def test_an_invalid_devcontainer_fails_the_build_and_says_why(git_repo):
    git_repo.commit({".devcontainer/devcontainer.json": '{"forwardPorts": ["not a port"]}'})
    repo = make_repo(git_repo, environment_source=Repo.EnvironmentSource.DEVCONTAINER)
    image = build(repo)
    assert image.status == RepoImage.Status.FAILED
    assert "forwardPorts" in image.error and "not a port" in image.error


def test_two_rebuilds_requested_at_once_give_one_build(git_repo):
    repo = make_repo(git_repo)
    first, created_first = repo.request_build("a")
    second, created_second = repo.request_build("b")
    assert created_first and not created_second
    assert first == second
    assert repo.images.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_rebuild_requests_from_two_connections_give_one_build(git_repo):
    repo = make_repo(git_repo)
    results = []
    barrier = threading.Barrier(2)

    def request():
        barrier.wait()
        try:
            results.append(Repo.objects.get(pk=repo.pk).request_build("race")[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert repo.images.count() == 1


@pytest.mark.django_db(transaction=True)
def test_repo_deleted_while_its_image_builds_leaves_no_files(git_repo, sandbox_root):
    repo = make_repo(git_repo, setup_commands="sleep 1")
    image, _ = repo.request_build("test")
    deleter = threading.Timer(0.4, lambda: Repo.objects.filter(pk=repo.pk).delete())
    deleter.start()
    assert builds.run_build(image.pk) is None
    deleter.join()
    assert not RepoImage.objects.filter(pk=image.pk).exists()
    assert [p.name for p in (sandbox_root / "images").iterdir()] == []


def test_secrets_are_encrypted_at_rest_reach_setup_and_stay_out_of_the_log(git_repo):
    repo = make_repo(git_repo, setup_commands='echo "token is $API_TOKEN"\ntest "$API_TOKEN" = sk-live-123456')
    secret = RepoSecret(repo=repo, name="API_TOKEN")
    secret.set_value("sk-live-123456")
    secret.save()
    stored = RepoSecret.objects.values_list("encrypted_value", flat=True).get()
    assert "sk-live-123456" not in stored
    image = build(repo)
    assert image.status == RepoImage.Status.READY, image.build_log
    assert "sk-live-123456" not in image.build_log
    assert "token is [secret]" in image.build_log
    assert "API_TOKEN" not in image.env  # not part of the image's runtime environment


def test_a_secret_no_key_opens_fails_the_build_at_once_and_says_so(git_repo, settings):
    repo = make_repo(git_repo)
    secret = RepoSecret(repo=repo, name="API_TOKEN")
    secret.set_value("sk-live-123456")
    secret.save()
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key it was stored with is gone
    settings.SECRET_KEY = "another-machine"
    image = build(repo)
    assert image.status == RepoImage.Status.FAILED and image.finished_at is not None
    assert "cannot be decrypted" in image.error and "Set the repo's secrets again" in image.build_log


def test_rebuilds_happen_only_when_due_and_changed(git_repo, monkeypatch):
    repo = make_repo(git_repo, rebuild_interval_minutes=30)
    assert [i.reason for i in builds.queue_due_rebuilds()] == ["no image in service"]
    builds.run_build(repo.images.get().pk)

    assert builds.queue_due_rebuilds() == []  # not due yet
    later = repo.images.get().queued_at.replace() + repo.rebuild_interval
    assert builds.queue_due_rebuilds(now=later) == []  # due, but nothing changed

    git_repo.commit({"app.py": "print('v2')\n"})
    queued = builds.queue_due_rebuilds(now=later)
    assert len(queued) == 1 and queued[0].reason.startswith("branch head moved")
    builds.run_build(queued[0].pk)

    repo.setup_commands = "echo different"
    repo.save()
    later = repo.images.order_by("-queued_at")[0].queued_at + repo.rebuild_interval
    assert [i.reason for i in builds.queue_due_rebuilds(now=later)] == ["setup changed"]


def test_unused_images_are_collected_and_the_current_one_kept(git_repo, sandbox_root):
    repo = make_repo(git_repo)
    old = build(repo)
    git_repo.commit({"app.py": "print('v2')\n"})
    new = build(repo)
    assert builds.collect_images() == [old.pk]
    old.refresh_from_db()
    assert old.status == RepoImage.Status.COLLECTED
    assert sorted(p.name for p in (sandbox_root / "images").iterdir()) == [new.backend_ref]
