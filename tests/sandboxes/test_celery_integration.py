"""The lifecycle tasks carried out by a real Celery worker over the real broker."""

import pytest
from celery.contrib.testing.worker import start_worker

from inspect_site.celery import app
from sandboxes import jobs, tasks
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, Sandbox
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox


@pytest.fixture
def worker():
    app.control.purge()  # nothing left over from another run may be consumed here
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"):
        yield


def wait_for(condition, timeout=60.0):
    return eventually(condition, timeout=timeout, interval=0.1, what="the worker")


@pytest.mark.django_db(transaction=True)
def test_worker_builds_the_image_then_fills_the_warm_pool_then_terminates(worker, git_repo):
    repo = Repo.objects.create(name="demo", clone_url=git_repo.url, setup_commands="echo ok", warm_pool_size=1)

    tasks.rebuild_due_images.delay()  # what beat sends every minute: the new repo is due
    image = wait_for(lambda: RepoImage.objects.filter(repo=repo, status="ready").first())
    assert image.commit_sha == git_repo.head()
    assert "$ echo ok" in image.build_log

    pooled = wait_for(lambda: Sandbox.objects.filter(repo=repo, pooled=True, state=State.READY).first())
    assert pooled.image == image and pooled.synced_commit == git_repo.head()

    jobs.enqueue("sandboxes.tasks.terminate_sandbox", str(pooled.pk), "test done")  # by name, as sessions does
    ended = wait_for(lambda: Sandbox.objects.filter(pk=pooled.pk, state=State.TERMINATED).first())
    assert ended.end_reason == "test done"


def test_no_task_outlives_the_brokers_redelivery(settings):
    """With late acks, Redis gives a task unacknowledged for visibility_timeout to another worker: a build that
    ran longer would run twice. The hard time limit ends every task before that, and lets a build finish."""
    conf = app.conf
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit > \
        settings.IMAGE_BUILD_TIMEOUT_SECONDS
