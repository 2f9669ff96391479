"""Image builds of the local backend: clone, setup commands in a box (own PID, network, memory cgroup), secrets,
devcontainer.json."""

import json
import subprocess
from pathlib import Path

import pytest

from sandboxes.backends import cgroups
from sandboxes.backends.base import BackendError, ImageSpec, StartRequest
from tests.sandboxes.local_support import run, spec
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox


def test_build_clones_the_branch_runs_setup_and_streams_its_log(backend, git_repo):
    lines = []
    built = backend.build_image(spec(git_repo, setup=["echo step one", "echo $COLOR > color.txt"],
                                     env={"COLOR": "blue"}), lines.append)
    log = "".join(lines)
    assert built.commit_sha == git_repo.head()
    assert "$ echo step one" in log and "step one\n" in log
    workspace = backend.images / built.ref / "home" / "workspace"
    assert (workspace / "color.txt").read_text() == "blue\n"
    assert (workspace / "app.py").exists()
    assert built.size_bytes > 0


def test_build_secrets_reach_setup_but_never_the_log(backend, git_repo):
    lines = []
    backend.build_image(spec(git_repo, setup=["echo token=$NPM_TOKEN", "test \"$NPM_TOKEN\" = hunter2-secret"],
                             secrets={"NPM_TOKEN": "hunter2-secret"}), lines.append)
    log = "".join(lines)
    assert "hunter2-secret" not in log
    assert "token=[secret]" in log


def command_lines_holding(secret: str) -> list[bytes]:
    """Every process's command line on the host (what `ps` shows any user) that holds `secret`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                line = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if secret.encode() in line:
                found.append(line)
    return found


def test_no_secret_is_ever_on_a_command_line(backend, git_repo):
    """Sandbox and build environments reach their commands through the environment, which only the process's
    own uid reads, never as arguments, which `ps` shows every user of the host."""
    seen = []
    built = backend.build_image(spec(git_repo, setup=["echo started && echo \"$NPM_TOKEN\" > token.txt && sleep 1"],
                                     secrets={"NPM_TOKEN": "build-secret-4242"}),
                                lambda line: seen.append(command_lines_holding("build-secret-4242")))
    assert (backend.images / built.ref / "home/workspace/token.txt").read_text() == "build-secret-4242\n"
    image = backend.build_image(spec(git_repo, name="img2"), lambda line: None)
    ref = backend.start(StartRequest(sandbox_id="box2", image_ref=image.ref, env={"IMAGE_VAR": "image-secret-4242"}))
    try:
        backend.start_service(ref, "svc", 'echo "$TOKEN $IMAGE_VAR" > /tmp/seen && exec sleep 30',
                              env={"TOKEN": "service-secret-4242"})
        eventually(lambda: run(backend, ref, "cat /tmp/seen 2>/dev/null || true").strip()
                   == "service-secret-4242 image-secret-4242", timeout=10, what="the service to see its environment")
        assert run(backend, ref, 'echo "$TOKEN"', env={"TOKEN": "exec-secret-4242"}).strip() == "exec-secret-4242"
        for secret in ("service-secret-4242", "image-secret-4242"):
            assert command_lines_holding(secret) == []
        assert len(seen) >= 2 and not any(seen)  # looked while the setup command ran
    finally:
        backend.terminate(ref)


def test_failing_setup_fails_the_build_and_leaves_nothing_behind(backend, git_repo):
    lines = []
    with pytest.raises(BackendError, match="exit code 3"):
        backend.build_image(spec(git_repo, setup=["echo about to fail", "exit 3"]), lines.append)
    assert "about to fail" in "".join(lines)
    assert list(backend.images.iterdir()) == []


def test_a_build_steps_background_work_ends_with_the_step(backend, git_repo):
    # A step's leftover child would write into the image after the step (here: while the next one runs).
    built = backend.build_image(spec(git_repo, setup=["(sleep 1.5; echo late > late.txt) &", "sleep 3"]),
                                lambda line: None)
    assert not (backend.images / built.ref / "home" / "workspace" / "late.txt").exists()
    if cgroups.root() is not None:
        assert not (cgroups.root()[0] / backend.group_name(f"build-{built.ref}")).exists()


def test_a_builds_memory_limit_counts_all_its_processes(backend, git_repo, settings):
    if cgroups.root() is None:
        pytest.skip("memory cgroups need root; without them the limit is per process (RLIMIT_AS)")
    settings.SANDBOX_MEMORY_LIMIT_BYTES = 300 * 1024**2
    hog = "python3 -c 'import time; x = b\"x\" * (200 * 1024 * 1024); time.sleep(2)'"
    # Each hog alone fits; together they are over the build's limit, so the kernel kills one.
    with pytest.raises(BackendError, match="setup command failed"):
        backend.build_image(spec(git_repo, setup=[f"{hog} & first=$!; {hog}; second=$?; wait $first && "
                                                  "test $second = 0"]), lambda line: None)
    assert list(backend.images.iterdir()) == []


def test_unreachable_clone_url_fails_with_gits_reason(backend, open_tmp):
    bad = ImageSpec(name="x", clone_url=f"file://{open_tmp}/nope", branch="main", setup_commands=[],
                    start_commands=[], env={})
    with pytest.raises(BackendError, match="git clone failed"):
        backend.build_image(bad, lambda line: None)
    assert list(backend.images.iterdir()) == []


def test_devcontainer_commands_env_and_ports_are_honoured(backend, git_repo):
    git_repo.commit({".devcontainer/devcontainer.json": """{
        // comments and trailing commas are allowed in devcontainer.json
        "image": "mcr.microsoft.com/devcontainers/python:3",
        "containerEnv": {"APP_ENV": "dev"},
        "onCreateCommand": "echo created > on_create.txt",
        "postCreateCommand": ["sh", "-c", "echo $APP_ENV > post_create.txt"],
        "postStartCommand": "python3 -m http.server 3000",
        "forwardPorts": [3000, "localhost:5173"],
    }"""})
    built = backend.build_image(spec(git_repo, devcontainer=True), lambda line: None)
    workspace = backend.images / built.ref / "home" / "workspace"
    assert (workspace / "on_create.txt").read_text() == "created\n"
    assert (workspace / "post_create.txt").read_text() == "dev\n"
    assert built.env == {"APP_ENV": "dev"}
    assert built.start_commands == ["python3 -m http.server 3000"]
    assert built.forward_ports == [3000, 5173]


def test_a_repos_environment_reaches_its_commands_and_never_the_hosts_programs(backend, git_repo, open_tmp):
    """devcontainer.json's containerEnv is written by whoever can push to the branch: its PATH and LD_PRELOAD
    apply inside the sandbox only, never to setpriv, pasta, nsenter or bubblewrap on the host."""
    evil, marker = open_tmp / "evil", open_tmp / "ran-on-the-host"
    evil.mkdir(mode=0o755)
    for name in ("setpriv", "env", "pasta", "nsenter", "bwrap", "prlimit", "sh", "bash", "python3", "git"):
        (evil / name).write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
        (evil / name).chmod(0o755)
    # A library that marks the host when loaded there (inside, the host's /tmp is not there: it fails to load).
    (evil / "evil.c").write_text('#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void '
                                 f'mark(void) {{ close(open("{marker}", O_CREAT | O_WRONLY, 0644)); }}\n')
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(evil / "evil.so"), str(evil / "evil.c")], check=True)
    git_repo.commit({".devcontainer/devcontainer.json": json.dumps({
        "containerEnv": {"PATH": f"{evil}:/usr/bin:/bin", "LD_PRELOAD": str(evil / "evil.so")},
        "postCreateCommand": "echo built > built.txt",
    })})
    built = backend.build_image(spec(git_repo, devcontainer=True), lambda line: None)
    assert (backend.images / built.ref / "home/workspace/built.txt").read_text() == "built\n"
    ref = backend.start(StartRequest(sandbox_id="box3", image_ref=built.ref, env=built.env))
    try:
        out = backend.exec(ref, 'printf "%s|%s" "$LD_PRELOAD" "$PATH"').output
        assert out.endswith(f"{evil}/evil.so|{evil}:/usr/bin:/bin")  # inside, as the repo asked
    finally:
        backend.terminate(ref)
    # No program of the host ran from the repo's PATH or loaded its LD_PRELOAD.
    assert not marker.exists()


def test_the_repos_own_commands_get_only_the_secrets_meant_for_them(backend, git_repo):
    """devcontainer.json is written by whoever can push to the branch; the admin's setup commands are not."""
    git_repo.commit({".devcontainer/devcontainer.json": """{
        "postCreateCommand": "echo ${DEPLOY_KEY:-none} ${NPM_TOKEN:-none} > repo_saw.txt",
    }"""})
    secrets = {"DEPLOY_KEY": "admin-only-4242", "NPM_TOKEN": "shared-4242"}
    built = backend.build_image(
        ImageSpec(name="img", clone_url=git_repo.url, branch="main", setup_commands=[
            "echo $DEPLOY_KEY $NPM_TOKEN > admin_saw.txt"], start_commands=[], env={}, use_devcontainer=True,
            build_secrets=secrets, repo_command_secrets={"NPM_TOKEN": "shared-4242"}), lambda line: None)
    workspace = backend.images / built.ref / "home" / "workspace"
    assert (workspace / "repo_saw.txt").read_text() == "none shared-4242\n"
    assert (workspace / "admin_saw.txt").read_text() == "admin-only-4242 shared-4242\n"
