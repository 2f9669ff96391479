"""Sandbox lifecycle carried out against the real local backend and the database."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sandboxes import bridge_channel, builds, lifecycle, provisioning
from sandboxes.backends import get_backend
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox, Snapshot
from tests.support.listener import Listener
from tests.support.waiting import eventually

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


@pytest.fixture
def repo(built_repo) -> Repo:
    return built_repo


def shell(sandbox: Sandbox, command: str) -> str:
    result = get_backend().exec(sandbox.backend_ref, command)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_new_sandbox_syncs_to_the_branch_head_and_announces_its_phases(repo, git_repo):
    head = git_repo.commit({"app.py": "print('newer than the image')\n"}, "after the image")
    sandbox = provisioning.create_sandbox(repo)
    listener = Listener(bridge_channel.group_name(sandbox.pk))

    sandbox = provisioning.provision(sandbox.pk)

    assert sandbox.state == State.READY
    assert sandbox.synced_commit == head
    assert shell(sandbox, "cat app.py image.txt") == "print('newer than the image')\nimage\n"

    phases = [listener.receive()["state"] for _ in range(2)]
    listener.close()
    assert phases == [State.SYNCING, State.READY]


def test_start_commands_run_in_the_background_of_a_ready_sandbox(git_repo):
    repo = Repo.objects.create(name="svc", clone_url=git_repo.url, start_commands="echo up > /tmp/service-ran")
    builds.run_build(repo.request_build()[0].pk)
    sandbox = provisioning.provision(provisioning.create_sandbox(repo).pk)
    eventually(lambda: get_backend().exec(sandbox.backend_ref, "cat /tmp/service-ran").output == "up\n",
               timeout=10, what="the start command ran")


def test_a_snapshot_restores_the_work_into_a_new_sandbox(repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    shell(first, "echo agent work > work.txt && rm README.md")
    snapshot = provisioning.take_snapshot(first.pk)
    assert snapshot.size_bytes < 1000
    first.refresh_from_db()
    assert first.state == State.READY  # back where it was
    provisioning.terminate(first.pk, "idle")

    restored = provisioning.provision(provisioning.create_sandbox(repo, snapshot=snapshot).pk)
    assert restored.state == State.READY
    assert restored.restored_from == snapshot
    assert shell(restored, "cat work.txt; ls") == "agent work\napp.py\nimage.txt\nwork.txt\n"


def test_a_snapshot_restores_into_a_matching_pooled_sandbox_and_keeps_its_commit(repo, git_repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    shell(first, "echo agent work > work.txt && rm README.md")
    snapshot = provisioning.take_snapshot(first.pk)
    provisioning.terminate(first.pk, "idle")
    cold = provisioning.provision(provisioning.create_sandbox(repo, snapshot=snapshot).pk)
    assert cold.synced_commit == first.synced_commit  # the snapshot's commit, for its own snapshots later
    provisioning.terminate(cold.pk, "done")

    pooled = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    claimed = provisioning.claim_for_restore(snapshot)
    assert claimed.pk == pooled.pk and claimed.restored_from == snapshot and not claimed.pooled
    assert claimed.state == State.RUNNING and claimed.claimed_at is not None
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)
    listing = shell(claimed, "cat work.txt; ls; ls ~/.inspect-restore")
    assert listing == "agent work\napp.py\nimage.txt\nwork.txt\ndone\n"
    assert provisioning.claim_for_restore(snapshot) is None  # nothing left in the pool


def test_a_pooled_sandbox_on_a_newer_commit_is_reset_to_the_snapshots_commit_and_restored_into(repo, git_repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    original_app = shell(first, "cat app.py")
    shell(first, "echo agent work > work.txt && rm README.md")
    snapshot = provisioning.take_snapshot(first.pk)
    provisioning.terminate(first.pk, "idle")
    git_repo.commit({"app.py": "print('moved on')\n", "new.txt": "added later\n"}, "the branch moved")
    pooled = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    assert pooled.synced_commit != first.synced_commit

    claimed = provisioning.claim_for_restore(snapshot)
    assert claimed.pk == pooled.pk
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)

    claimed.refresh_from_db()
    assert claimed.state == State.RUNNING and claimed.synced_commit == first.synced_commit  # for its own snapshots
    assert shell(claimed, "git rev-parse HEAD").strip() == first.synced_commit
    # The work is back on the files it was made on: none of the branch's later changes.
    assert shell(claimed, "cat app.py work.txt image.txt") == original_app + "agent work\nimage\n"
    assert shell(claimed, "ls") == "app.py\nimage.txt\nwork.txt\n"
    assert sorted(shell(claimed, "git status --porcelain --untracked-files=all").splitlines()) == [
        " D README.md", "?? image.txt", "?? work.txt"]


def test_a_pooled_sandbox_behind_the_snapshot_fetches_its_commit_and_keeps_the_agents_branch(repo, git_repo):
    pooled = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)  # synced before the move
    head = git_repo.commit({"app.py": "print('moved on')\n"}, "the branch moved")
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    assert first.synced_commit == head != pooled.synced_commit
    shell(first, "git checkout -q -b agent-work && echo done > work.txt && git add work.txt && "
                 "git -c user.name=a -c user.email=a@example.com commit -qm 'the agent commits' && echo more >> app.py")
    snapshot = provisioning.take_snapshot(first.pk)

    claimed = provisioning.claim_for_restore(snapshot)
    assert claimed.pk == pooled.pk
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)
    claimed.refresh_from_db()
    assert claimed.state == State.RUNNING and claimed.synced_commit == head
    assert shell(claimed, "git rev-parse --abbrev-ref HEAD; git log --format=%s -2").split("\n")[:3] == [
        "agent-work", "the agent commits", "the branch moved"]
    assert shell(claimed, "cat app.py") == "print('moved on')\nmore\n"
    assert shell(claimed, "git status --porcelain") == " M app.py\n?? image.txt\n"
    shell(claimed, "git fsck --no-progress --no-dangling")

    # Applied once: run again (a redelivered task), it leaves the agent's later work alone.
    shell(claimed, "echo later > app.py")
    Sandbox.objects.filter(pk=claimed.pk).update(synced_commit=pooled.synced_commit)
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)
    assert shell(claimed, "cat app.py") == "later\n"


def test_a_restore_refuses_a_commit_that_is_not_a_commit_id(repo, git_repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    snapshot = provisioning.take_snapshot(first.pk)
    Sandbox.objects.filter(pk=first.pk).update(synced_commit="--upload-pack=touch /tmp/ran")  # an option to git
    snapshot = Snapshot.objects.get(pk=snapshot.pk)
    provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    claimed = provisioning.claim_for_restore(snapshot)
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)
    claimed.refresh_from_db()
    assert claimed.state == State.TERMINATED and "not a commit id: '--upload-pack" in claimed.end_reason


def test_a_pooled_sandbox_on_another_image_is_not_restored_into(repo, git_repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    snapshot = provisioning.take_snapshot(first.pk)
    git_repo.commit({"app.py": "print('moved on')\n"}, "the branch moved")
    assert builds.run_build(repo.request_build("newer")[0].pk).status == "ready"
    pooled = provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    assert pooled.image_id != snapshot.image_id
    assert provisioning.claim_for_restore(snapshot) is None
    assert Sandbox.objects.get(pk=pooled.pk).pooled  # still waiting for a new session


def test_a_restore_whose_commit_cannot_be_found_ends_the_sandbox_with_the_reason(repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    snapshot = provisioning.take_snapshot(first.pk)
    Sandbox.objects.filter(pk=first.pk).update(synced_commit="0" * 40)  # e.g. history rewritten since
    snapshot = Snapshot.objects.get(pk=snapshot.pk)
    provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    claimed = provisioning.claim_for_restore(snapshot)
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)
    claimed.refresh_from_db()
    assert claimed.state == State.TERMINATED
    assert f"the snapshot's commit {'0' * 40} is not in the sandbox or its origin" in claimed.end_reason
    # The next follow-up does not try that again: it restores into a new sandbox, which has the commit.
    provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    assert provisioning.claim_for_restore(snapshot) is None


def test_a_restore_into_a_pooled_sandbox_that_fails_ends_it_with_the_reason(repo):
    first = provisioning.provision(provisioning.create_sandbox(repo).pk)
    snapshot = provisioning.take_snapshot(first.pk)
    provisioning.provision(provisioning.create_sandbox(repo, pooled=True).pk)
    claimed = provisioning.claim_for_restore(snapshot)
    get_backend().delete_snapshot(snapshot.backend_ref)  # e.g. the snapshot's files are gone
    provisioning.apply_snapshot(claimed.pk, snapshot.pk)
    claimed.refresh_from_db()
    assert claimed.state == State.TERMINATED and "is not on this machine" in claimed.end_reason


def test_terminate_ends_the_sandbox_and_records_why(repo, sandbox_root):
    sandbox = provisioning.provision(provisioning.create_sandbox(repo).pk)
    ended = provisioning.terminate(sandbox.pk, "idle for 10 minutes")
    assert ended.state == State.TERMINATED
    assert ended.end_reason == "idle for 10 minutes" and ended.terminated_at
    assert not get_backend().is_alive(sandbox.backend_ref)
    assert list((sandbox_root / "sandboxes").iterdir()) == []


def test_a_sandbox_that_cannot_start_fails_with_the_reason(repo):
    image = repo.current_image()
    get_backend().delete_image(image.backend_ref)
    sandbox = provisioning.provision(provisioning.create_sandbox(repo).pk)
    assert sandbox.state == State.FAILED
    assert "not on this machine" in sandbox.end_reason


def test_no_sandbox_without_an_image(git_repo):
    repo = Repo.objects.create(name="empty", clone_url=git_repo.url)
    with pytest.raises(provisioning.NoImage):
        provisioning.create_sandbox(repo)


def test_deleting_a_sandbox_row_frees_its_processes(repo, django_capture_on_commit_callbacks):
    sandbox = provisioning.provision(provisioning.create_sandbox(repo).pk)
    with django_capture_on_commit_callbacks(execute=True):
        Sandbox.objects.filter(pk=sandbox.pk).delete()
    assert not get_backend().is_alive(sandbox.backend_ref)


def fill_and_start(repo: Repo) -> list[Sandbox]:
    created, _ = provisioning.fill_pool(repo)
    return [provisioning.provision(s.pk) for s in created]


def test_the_warm_pool_is_filled_claimed_and_refilled(repo):
    repo.warm_pool_size = 2
    repo.save()
    pool = fill_and_start(repo)
    assert [s.state for s in pool] == [State.READY, State.READY]
    assert provisioning.fill_pool(repo) == ([], [])  # full

    sandbox, from_pool = provisioning.claim_or_create(repo)
    assert from_pool and sandbox.state == State.RUNNING and not sandbox.pooled
    assert sandbox.pk in {s.pk for s in pool}
    assert len(fill_and_start(repo)) == 1  # the claimed one is replaced


def test_an_empty_pool_falls_back_to_a_new_sandbox(repo):
    sandbox, from_pool = provisioning.claim_or_create(repo)
    assert not from_pool and sandbox.state == State.PROVISIONING


def test_writing_a_prompt_warms_a_sandbox_which_the_session_claims_even_before_it_is_ready(repo):
    assert repo.warm_pool_size == 0 and provisioning.fill_pool(repo) == ([], [])
    provisioning.want_warm(repo)
    [warming] = provisioning.fill_pool(repo)[0]
    assert warming.pooled and warming.state == State.PROVISIONING
    assert provisioning.fill_pool(repo) == ([], [])  # one is enough, however often it is asked for

    sandbox, from_pool = provisioning.claim_or_create(repo)
    assert from_pool and sandbox.pk == warming.pk and not sandbox.pooled
    assert sandbox.state == State.PROVISIONING and sandbox.claimed_at is not None
    assert provisioning.provision(sandbox.pk).state == State.READY  # its start goes on, now for the session

    # A longer wish (a session's sandbox was let go) extends it; a shorter one never cuts it down.
    provisioning.want_warm(repo, timedelta(hours=1))
    assert repo.warm_wanted_until - timezone.now() > timedelta(minutes=59)
    provisioning.want_warm(repo)
    assert repo.warm_wanted_until - timezone.now() > timedelta(minutes=59)

    # Once the wish expires, a warm sandbox nobody claimed is retired as an extra.
    provisioning.want_warm(repo)
    [unclaimed] = provisioning.fill_pool(repo)[0]
    Repo.objects.filter(pk=repo.pk).update(warm_wanted_until=timezone.now() - timedelta(seconds=1))
    assert provisioning.fill_pool(Repo.objects.get(pk=repo.pk)) == ([], [str(unclaimed.pk)])


def test_a_sandbox_claimed_while_the_pool_is_planned_is_not_retired(repo, monkeypatch):
    repo.warm_pool_size = 1
    repo.save()
    [member] = fill_and_start(repo)
    real_changes = provisioning.pool_changes

    def claimed_meanwhile(repo):
        plan = real_changes(repo)
        assert Sandbox.claim(member.pk, State.READY)  # a follow-up takes it between the plan and the retiring
        return lifecycle.PoolPlan(start=plan.start, retire=[str(member.pk)])

    monkeypatch.setattr(provisioning, "pool_changes", claimed_meanwhile)
    assert provisioning.fill_pool(repo)[1] == []
    assert Sandbox.objects.get(pk=member.pk).state == State.RUNNING


def test_a_ready_pooled_sandbox_is_claimed_before_a_starting_one(repo):
    repo.warm_pool_size = 1
    repo.save()
    [ready] = fill_and_start(repo)
    repo.warm_pool_size = 2
    repo.save()
    [starting] = provisioning.fill_pool(repo)[0]
    assert Sandbox.claim_from_pool(repo).pk == ready.pk
    assert Sandbox.claim_from_pool(repo).pk == starting.pk
    assert Sandbox.claim_from_pool(repo) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_get_the_same_sandbox(repo):
    repo.warm_pool_size = 3
    repo.save()
    fill_and_start(repo)
    claimed = []
    barrier = threading.Barrier(4)

    def claim():
        barrier.wait()
        try:
            sandbox = Sandbox.claim_from_pool(Repo.objects.get(pk=repo.pk))
            claimed.append(sandbox.pk if sandbox else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [pk for pk in claimed if pk]
    assert len(winners) == 3 and len(set(winners)) == 3
    assert claimed.count(None) == 1


def test_a_newer_image_replaces_the_pool(repo, git_repo):
    repo.warm_pool_size = 1
    repo.save()
    [old] = fill_and_start(repo)
    git_repo.commit({"app.py": "print('v2')\n"})
    builds.run_build(repo.request_build()[0].pk)

    created, retired = provisioning.fill_pool(repo)
    assert retired == [str(old.pk)]
    assert len(created) == 1 and created[0].image == repo.current_image()
    assert Sandbox.claim_from_pool(repo).pk == created[0].pk  # the new one, starting; never the outdated one
