"""Local sandboxes with real bubblewrap, user namespaces and overlayfs: their walls, limits, snapshots and end
(image builds: test_local_builds.py)."""

import os
import time
from pathlib import Path

import pytest

from sandboxes.backends import cgroups
from sandboxes.backends.base import BackendError, StartRequest, sync_script
from tests.sandboxes.local_support import run
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox


def test_sandbox_runs_as_an_unprivileged_user_without_capabilities(backend, sandbox):
    out = run(backend, sandbox, "id -u; grep CapEff /proc/self/status; hostname; echo $GREETING; pwd")
    uid, caps, hostname, greeting, cwd = out.split("\n")[:5]
    assert uid == "1000"
    assert caps.split()[1] == "0000000000000000"
    assert hostname == "sandbox"
    assert greeting == "hi"
    assert cwd == "/home/agent/workspace"


def test_sandbox_cannot_see_the_control_plane_or_other_sandboxes(backend, sandbox, settings):
    listing = backend.exec(sandbox, f"ls -A {settings.VAR_DIR} {settings.BASE_DIR} {backend.root} /root").output
    assert "db.sqlite3" not in listing and "manage.py" not in listing and "images" not in listing
    assert "root:" not in backend.exec(sandbox, "cat /etc/shadow").output
    write = backend.exec(sandbox, "touch /usr/evil")
    assert write.exit_code != 0 and "Read-only file system" in write.output
    assert not Path("/usr/evil").exists()


def test_a_sandbox_sees_the_hosts_programs_and_nothing_else_of_it(backend, sandbox):
    # Of the host, only its programs, libraries and their configuration: an allowlist, not the host's / with holes.
    seen = set(run(backend, sandbox, "ls -A /").split())
    assert seen <= {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "opt", "proc", "run", "sbin",
                    "tmp", "usr", "var"}, seen
    assert set(run(backend, sandbox, "ls -A /var").split()) <= {"cache", "tmp"}  # no logs, no databases
    assert run(backend, sandbox, "git --version; python3 -c 'print(1)'").endswith("1\n")  # the programs work
    # Nor through the sandbox's PID 1 (its root is the host's tree, as the init sees it).
    assert backend.exec(sandbox, "ls /proc/1/root/").exit_code != 0


def test_sandbox_sees_only_its_own_processes(backend, sandbox):
    out = run(backend, sandbox, "ps -eo pid,comm --no-headers")
    pids = [int(line.split()[0]) for line in out.strip().splitlines()]
    assert max(pids) < 50  # its own PID namespace: the host's processes are not listed
    assert str(os.getpid()) not in out.split()


def test_writes_land_in_the_upper_layer_and_leave_the_image_untouched(backend, sandbox, image):
    run(backend, sandbox, "echo changed >> app.py && echo new > new.txt && rm README.md")
    lower = backend.images / image.ref / "home" / "workspace"
    upper = backend.sandboxes / sandbox / "upper" / "workspace"
    assert (lower / "app.py").read_text() == "print('hello')\n"
    assert (lower / "README.md").exists()
    assert (upper / "new.txt").read_text() == "new\n"
    assert run(backend, sandbox, "cat app.py; ls") == "print('hello')\nchanged\napp.py\nbuilt.txt\nnew.txt\n"


def test_exec_streams_output_as_it_comes(backend, sandbox):
    seen = []
    stamps = []

    def on_output(line):
        seen.append(line)
        stamps.append(time.monotonic())

    result = backend.exec(sandbox, "echo first; sleep 0.5; echo second", on_output=on_output)
    assert result.exit_code == 0
    assert seen == ["first\n", "second\n"]
    assert stamps[1] - stamps[0] > 0.3  # the first line arrived before the command finished


def test_exec_timeout_kills_the_command(backend, sandbox):
    started = time.monotonic()
    result = backend.exec(sandbox, "sleep 30", timeout=0.5)
    assert result.exit_code == 124
    assert time.monotonic() - started < 5


def test_process_limit_is_enforced(backend, sandbox, settings):
    settings.SANDBOX_PROCESS_LIMIT = 30
    out = backend.exec(sandbox, "for i in $(seq 60); do sleep 1 & done 2>&1; wait").output
    assert "Resource temporarily unavailable" in out or "retry" in out


def test_memory_limit_is_enforced(backend, sandbox, settings):
    settings.SANDBOX_MEMORY_LIMIT_BYTES = 200 * 1024**2
    # Memory really used (written), not only reserved: a cgroup kills the process, RLIMIT_AS refuses it.
    result = backend.exec(sandbox, "python3 -c 'x = b\"x\" * (400 * 1024 * 1024); print(\"allocated\")'")
    assert result.exit_code != 0
    assert "allocated" not in result.output
    assert "MemoryError" in result.output or result.exit_code in (137, -9)


def test_the_memory_limit_counts_the_whole_sandbox(backend, sandbox, settings):
    if cgroups.root() is None:
        pytest.skip("memory cgroups need root; without them the limit is per process (RLIMIT_AS)")
    settings.SANDBOX_MEMORY_LIMIT_BYTES = 300 * 1024**2
    hog = "python3 -c 'import time; x = b\"x\" * (200 * 1024 * 1024); print(\"held\", flush=True); time.sleep(30)'"
    backend.start_service(sandbox, "hog", hog)
    log = backend.sandboxes / sandbox / "service-hog.log"
    eventually(lambda: log.exists() and "held" in log.read_text(), timeout=20, what="the first hog holds its memory")
    # 200 MB held by one process + 200 MB by another is over 300 MB for the sandbox, each alone is not:
    # the kernel kills one of them.
    second = backend.exec(sandbox, hog.replace("time.sleep(30)", "pass"))
    first_alive = backend.exec(sandbox, "pgrep -f 'time[.]sleep' >/dev/null").exit_code == 0
    assert not (second.exit_code == 0 and first_alive)


def test_chromium_runs_in_a_sandbox(backend, sandbox):
    # Chromium reserves far more address space than it uses: only a cgroup limit lets it start.
    if cgroups.root() is None:
        pytest.skip("memory cgroups need root")
    result = backend.exec(sandbox, "chromium --headless=new --no-sandbox --disable-gpu --dump-dom "
                                   "'data:text/html,<p>rendered</p>' 2>/dev/null", timeout=60)
    assert "<p>rendered</p>" in result.output


def test_sync_brings_the_workspace_to_the_branch_head(backend, sandbox, git_repo):
    new_head = git_repo.commit({"app.py": "print('v2')\n"}, "v2")
    out = run(backend, sandbox, sync_script("main"))
    assert out.strip().splitlines()[-1] == new_head
    assert run(backend, sandbox, "cat app.py") == "print('v2')\n"


def test_sync_copies_nothing_unchanged_into_the_sandboxs_layer(backend, sandbox, git_repo):
    git_repo.commit({"other.txt": "new\n"}, "small change")
    run(backend, sandbox, sync_script("main"))
    upper = backend.sandboxes / sandbox / "upper" / "workspace"
    assert (upper / "other.txt").exists()
    assert not (upper / "app.py").exists()  # untouched by the commit, so still only in the image


def test_snapshot_holds_only_the_change_and_restores_it(backend, sandbox, image):
    run(backend, sandbox, "head -c 300000 /dev/urandom > blob.bin && rm README.md && mkdir -p deep/dir && "
                          "echo kept > deep/dir/f.txt && echo home > ~/.agent-state")
    info = backend.snapshot(sandbox, "snap1")
    assert 300_000 <= info.size_bytes < 400_000
    backend.terminate(sandbox)

    restored = backend.start(StartRequest(sandbox_id="box2", image_ref=image.ref, env={}, snapshot_ref="snap1"))
    try:
        out = run(backend, restored, "ls; cat deep/dir/f.txt ~/.agent-state; stat -c %s blob.bin")
        assert "README.md" not in out  # a deletion survives the snapshot too
        assert "kept\nhome\n300000\n" in out
    finally:
        backend.terminate(restored)


def test_a_snapshot_applied_to_a_running_sandbox_brings_its_changes_and_spares_the_services(backend, sandbox, image):
    run(backend, sandbox, "echo changed > built.txt && rm README.md && mkdir -p deep && echo new > deep/f.txt && "
                          "ln -s deep/f.txt link && "
                          "mkdir -p ~/.local/share/opencode && echo old-db > ~/.local/share/opencode/opencode.db && "
                          "echo old-log > ~/.local/share/opencode/log.txt && echo pip > ~/.agent-tool")
    # A folder of the image deleted and made anew: an opaque folder in the snapshot.
    run(backend, sandbox, "ls .git/hooks | grep -q sample && rm -r .git/hooks && mkdir .git/hooks && "
                          "echo fresh > .git/hooks/fresh.txt")
    backend.snapshot(sandbox, "snap1")
    backend.terminate(sandbox)

    pooled = backend.start(StartRequest(sandbox_id="box2", image_ref=image.ref, env={}))
    try:
        # The pooled sandbox's own state: its running OpenCode's database, a file the snapshot lacks.
        # And a symlink planted where the snapshot has a folder: the copy must not follow it out.
        run(backend, pooled, "mkdir -p ~/.local/share/opencode && echo live-db > ~/.local/share/opencode/opencode.db"
                             " && echo stale > .git/hooks/stale.txt && mkdir /tmp/outside && ln -s /tmp/outside deep"
                             " && sleep 600 &")
        aside = {".local/share/opencode/opencode.db": ".restore/opencode.db"}
        backend.apply_snapshot(pooled, "snap1", skip=(".local/share/opencode",), aside=aside, done=".restore/done")
        out = run(backend, pooled, "cat built.txt deep/f.txt link ~/.agent-tool; ls; ls .git/hooks; "
                                   "cat ~/.local/share/opencode/opencode.db ~/.restore/opencode.db; ls ~/.restore; "
                                   "ls ~/.local/share/opencode; "
                                   "echo more >> deep/f.txt && rm ~/.restore/done && echo w")
        assert "changed\nnew\nnew\npip\n" in out
        assert "README.md" not in out  # deleted in the snapshot, so deleted here
        assert "fresh.txt" in out and "stale.txt" not in out and "sample" not in out  # the folder replaced whole
        assert "live-db\nold-db\ndone\nopencode.db\n" in out  # the running service's file untouched
        assert "log.txt" not in out
        assert out.endswith("w\n")  # everything is the sandbox user's to change
        assert run(backend, pooled, "test -d deep && test ! -L deep && ls -A /tmp/outside") == ""
    finally:
        backend.terminate(pooled)


def host_uid_of(backend, ref) -> int:
    """The host uid a sandbox's processes run as (its PID 1's, seen from the host)."""
    status = Path(f"/proc/{backend._init_pid(ref)}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_each_sandbox_runs_as_a_host_uid_of_its_own_and_carries_its_work_to_another(backend, image, settings):
    if os.geteuid() != 0:
        pytest.skip("a uid per sandbox needs root (otherwise every sandbox is the platform's user)")
    first = backend.start(StartRequest(sandbox_id="own1", image_ref=image.ref, env={}))
    second = third = None
    try:
        second = backend.start(StartRequest(sandbox_id="own2", image_ref=image.ref, env={}))
        uids = {host_uid_of(backend, first), host_uid_of(backend, second)}
        # Two uids, neither the image's (a build's): no sandbox can reach another's files or the image's.
        assert len(uids) == 2 and settings.SANDBOX_HOST_UID not in uids
        # Each writes the image's files as its own (copied up to its own layer); the shared image is untouched.
        for ref in (first, second):
            assert run(backend, ref, "echo mine >> built.txt && stat -c %u built.txt && cat built.txt") \
                == "1000\nbuilt\nmine\n"
        assert (backend.images / image.ref / "home" / "workspace" / "built.txt").read_text() == "built\n"
        assert (backend.sandboxes / first / "upper" / "workspace" / "built.txt").stat().st_uid \
            == host_uid_of(backend, first)

        # Work saved from one (a private file among it) comes back whole in a sandbox of another uid, started
        # from the snapshot or restored into a running one.
        run(backend, first, "echo secret > private.txt && chmod 600 private.txt")
        # A file of another owner in its layer (as a copy racing the sandbox's symlinks could pick up): it stays
        # that owner's, so no sandbox that restores the snapshot can read it.
        raced = backend.sandboxes / first / "upper" / "workspace" / "raced.txt"
        raced.write_text("root's\n")
        raced.chmod(0o600)
        backend.snapshot(first, "own-snap")
        third = backend.start(StartRequest(sandbox_id="own3", image_ref=image.ref, env={}, snapshot_ref="own-snap"))
        backend.apply_snapshot(second, "own-snap", skip=(), aside={}, done=".restore/done")
        for ref in (third, second):
            assert run(backend, ref, "cat private.txt && stat -c %a private.txt") == "secret\n600\n"
            assert backend.exec(ref, "cat raced.txt").exit_code != 0
    finally:
        for ref in (first, second, third):
            if ref:
                backend.terminate(ref)
    assert backend.uid_slots.in_use() == []  # every uid given back


def test_a_snapshot_cannot_be_applied_to_a_sandbox_that_is_not_running(backend, sandbox, image):
    backend.snapshot(sandbox, "snap1")
    backend.terminate(sandbox)
    with pytest.raises(BackendError, match="not running"):
        backend.apply_snapshot(sandbox, "snap1", skip=(), aside={}, done=".restore/done")


def test_terminate_ends_the_whole_process_tree_and_frees_everything(backend, sandbox):
    # Durations no other process on the machine uses: the count below looks at every process.
    run(backend, sandbox, "(setsid sleep 300.4242 &) ; nohup sleep 301.4242 >/dev/null 2>&1 &")
    backend.start_service(sandbox, "server", "sleep 302.4242")
    time.sleep(0.3)

    def sleepers():
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmd = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"sleep\x0030") and cmd.endswith(b".4242\x00"):
                    found.append(cmd)
        return found

    assert len(sleepers()) == 3
    assert backend.is_alive(sandbox)
    backend.terminate(sandbox)
    assert sleepers() == []
    assert not backend.is_alive(sandbox)
    assert not (backend.sandboxes / sandbox).exists()
    backend.terminate(sandbox)  # idempotent


def test_exec_in_a_terminated_sandbox_is_refused(backend, sandbox):
    backend.terminate(sandbox)
    with pytest.raises(BackendError, match="not running"):
        backend.exec(sandbox, "true")


def test_start_from_a_missing_image_is_refused(backend):
    with pytest.raises(BackendError, match="not on this machine"):
        backend.start(StartRequest(sandbox_id="x", image_ref="nope", env={}))


def test_a_terminated_sandbox_leaves_no_memory_cgroup(backend, sandbox):
    if cgroups.root() is None:
        pytest.skip("memory cgroups need root")
    group = cgroups.root()[0] / backend.group_name(sandbox)
    assert group.is_dir()
    backend.terminate(sandbox)
    assert not group.exists()
