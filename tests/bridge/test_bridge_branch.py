"""The session's branch (bridge/branch.py) against real git repos in tmp_path: the commit a prompt's run ends
with, its files, and the hand-off push. The end of a run, which wires them into the bridge, at the end."""

import asyncio
import http.server
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import bridge.branch
from bridge.agent import Agent, CommandError, checked_commit_spec
from bridge.branch import check_person, commit_changes, commit_files, hand_off, parse_numstat, push_errors
from bridge.config import BridgeConfig
from bridge.outbox import Outbox

ADA = {"name": "Ada Lovelace", "email": "ada@example.com"}
BOB = {"name": "Bob Byte", "email": "bob@example.com"}
CY = {"name": "Cy Cache", "email": "cy@example.com"}


def run(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=Setup", "-c", "user.email=setup@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def workspace(tmp_path: Path) -> Path:
    """A repo with one commit on main, its HEAD detached (as a sandbox's checkout of a commit is), whose own
    config names someone else and whose hooks would refuse every commit."""
    ws = tmp_path / "ws"
    ws.mkdir()
    run(ws, "init", "-q", "-b", "main")
    (ws / "app.py").write_text("a = 1\nb = 2\nc = 3\n")
    (ws / "old_name.txt").write_text("kept\n")
    run(ws, "add", "-A")
    run(ws, "commit", "-q", "-m", "first")
    run(ws, "checkout", "-q", "--detach")
    run(ws, "config", "user.name", "Repo Config")
    run(ws, "config", "user.email", "config@example.com")
    for hook in ("pre-commit", "commit-msg", "post-checkout"):
        path = ws / ".git/hooks" / hook
        path.write_text("#!/bin/sh\ntouch \"$(git rev-parse --git-dir)/hook-ran\"\nexit 1\n")
        path.chmod(0o755)
    return ws


def bare_clone(tmp_path: Path, ws: Path) -> Path:
    bare = tmp_path / "handoff.git"
    run(tmp_path, "clone", "-q", "--bare", str(ws), str(bare))
    return bare


def test_a_commit_from_a_detached_head_goes_on_the_branch_by_the_author_with_co_author_trailers(tmp_path,
                                                                                                 monkeypatch):
    monkeypatch.setenv("GIT_AUTHOR_NAME", "The Bridge's Own Environment")
    ws = workspace(tmp_path)
    (ws / "app.py").write_text("a = 1\nb = 20\nc = 3\nd = 4\n")
    co_authors = [BOB, {"name": "Bob Again", "email": "BOB@example.com"}, ADA, CY]
    made = commit_changes(ws, "inspect/12", ADA, co_authors, "Make b bigger\n\nAnd add d.\n")
    assert made is not None
    assert run(ws, "symbolic-ref", "HEAD") == "refs/heads/inspect/12"
    assert made.sha == run(ws, "rev-parse", "HEAD") and made.branch == "inspect/12"
    by = "Ada Lovelace|ada@example.com"
    assert run(ws, "log", "-1", "--format=%an|%ae|%cn|%ce") == f"{by}|{by}"  # author and committer
    body = run(ws, "log", "-1", "--format=%B")
    assert body == made.message == ("Make b bigger\n\nAnd add d.\n\n"
                                    "Co-authored-by: Bob Byte <bob@example.com>\n"
                                    "Co-authored-by: Cy Cache <cy@example.com>")
    trailers = subprocess.run(["git", "interpret-trailers", "--parse"], input=body + "\n", capture_output=True,
                              text=True, check=True).stdout
    assert trailers.splitlines() == ["Co-authored-by: Bob Byte <bob@example.com>",
                                     "Co-authored-by: Cy Cache <cy@example.com>"]
    assert made.co_authors == [BOB, CY] and made.author == ADA
    assert made.files == [{"path": "app.py", "added": 2, "removed": 1}] and made.more_files == 0
    assert run(ws, "status", "--porcelain") == ""
    assert not (ws / ".git/hook-ran").exists()  # neither the checkout's hook nor the commit's ran
    assert run(ws, "rev-parse", "HEAD~1") == run(ws, "rev-parse", "main")  # on top of where HEAD was

    (ws / "app.py").write_text("a = 2\n")  # a second run: the same branch, one more commit
    again = commit_changes(ws, "inspect/12", BOB, [], "Shrink it")
    assert again is not None and run(ws, "rev-parse", "HEAD~1") == made.sha
    assert run(ws, "log", "-1", "--format=%an|%B") == "Bob Byte|Shrink it"


def test_nothing_changed_makes_no_commit(tmp_path):
    ws = workspace(tmp_path)
    head = run(ws, "rev-parse", "HEAD")
    assert commit_changes(ws, "inspect/3", ADA, [BOB], "Nothing") is None
    assert run(ws, "rev-parse", "HEAD") == head and run(ws, "rev-list", "--count", "--all") == "1"


def test_files_list_added_and_removed_lines_binaries_renames_and_how_many_more(tmp_path, monkeypatch):
    ws = workspace(tmp_path)
    (ws / "app.py").write_text("a = 1\nc = 3\nx = 1\ny = 2\n")
    (ws / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    (ws / "old_name.txt").rename(ws / "new name ü.txt")
    made = commit_changes(ws, "inspect/4", ADA, [], "Files")
    assert made is not None
    assert sorted(made.files, key=lambda f: f["path"]) == [
        {"path": "app.py", "added": 2, "removed": 1},
        {"path": "logo.png", "added": None, "removed": None},
        {"path": "new name ü.txt", "added": 0, "removed": 0},
    ]
    monkeypatch.setattr(bridge.branch, "MAX_COMMIT_FILES", 1)
    files, more = commit_files(ws, made.sha)
    assert len(files) == 1 and more == 2
    assert parse_numstat(b"1\t2\ta.txt\0-\t-\t\0old.bin\0new.bin\0") == [
        {"path": "a.txt", "added": 1, "removed": 2}, {"path": "new.bin", "added": None, "removed": None}]


@pytest.mark.parametrize(("branch", "author", "co_authors", "error"), [
    ("a..b", ADA, [], "invalid branch name"),
    ("-f", ADA, [], "invalid branch name"),
    ("HEAD", ADA, [], "invalid branch name"),
    ("inspect/5", {"name": "Ada\nCommitter: Eve", "email": "ada@example.com"}, [], "must not contain a newline"),
    ("inspect/5", {"name": "Ada", "email": "ada@example.com> <eve@example.com"}, [], "must not contain"),
    ("inspect/5", {"name": "A" * 201, "email": "ada@example.com"}, [], "over 200 characters"),
    ("inspect/5", ADA, [{"name": "Bob", "email": ""}], "co-author's email must be a non-empty string"),
])
def test_bad_input_is_refused_and_changes_nothing(tmp_path, branch, author, co_authors, error):
    ws = workspace(tmp_path)
    (ws / "app.py").write_text("changed\n")
    head = run(ws, "rev-parse", "HEAD")
    with pytest.raises(ValueError, match=error):
        commit_changes(ws, branch, author, co_authors, "Message")
    assert run(ws, "rev-parse", "HEAD") == head
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=ws).returncode != 0  # still detached
    assert run(ws, "status", "--porcelain") == "M app.py"  # not staged either
    assert run(ws, "branch", "--list") == f"* (HEAD detached at {head[:7]})\n  main"


def test_check_person_trims_and_needs_both_fields():
    assert check_person({"name": " Ada Lovelace ", "email": "ada@example.com "}) == ADA
    with pytest.raises(ValueError, match="author's email"):
        check_person({"name": "Ada"})
    with pytest.raises(ValueError, match="object with a name and an email"):
        check_person("Ada <ada@example.com>")


def test_the_branch_is_handed_off_without_force(tmp_path):
    ws = workspace(tmp_path)
    bare = bare_clone(tmp_path, ws)
    url = f"file://{bare}"
    (ws / "app.py").write_text("one\n")
    first = commit_changes(ws, "inspect/7", ADA, [], "One")
    assert first is not None
    assert hand_off(ws, url, "inspect/7", first.sha, "tok") == (True, "")
    assert run(bare, "rev-parse", "refs/heads/inspect/7") == first.sha

    # Someone else moved the control plane's branch: the next push is not a fast-forward, and is refused.
    other = tmp_path / "other"
    run(tmp_path, "clone", "-q", "--branch", "inspect/7", url, str(other))
    (other / "theirs.txt").write_text("theirs\n")
    run(other, "add", "-A")
    run(other, "commit", "-q", "-m", "Theirs")
    run(other, "push", "-q", "origin", "inspect/7")
    theirs = run(bare, "rev-parse", "refs/heads/inspect/7")
    (ws / "app.py").write_text("two\n")
    second = commit_changes(ws, "inspect/7", ADA, [], "Two")
    assert second is not None
    handed_off, error = hand_off(ws, url, "inspect/7", second.sha, "tok")
    assert not handed_off
    assert "[rejected]" in error and "error: failed to push some refs" in error and "hint:" not in error
    assert len(error) <= 500
    assert run(bare, "rev-parse", "refs/heads/inspect/7") == theirs  # not forced


def test_the_workspace_s_and_the_user_s_config_cannot_send_the_hand_off_elsewhere(tmp_path, monkeypatch):
    ws = workspace(tmp_path)
    bare = bare_clone(tmp_path, ws)
    decoys = [tmp_path / "decoy-repo.git", tmp_path / "decoy-user.git"]
    for decoy in decoys:
        run(tmp_path, "init", "-q", "--bare", str(decoy))
    url = f"file://{bare}"
    run(ws, "config", f"url.file://{decoys[0]}.insteadOf", url)  # the agent can write both
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "file://{decoys[1]}"]\n\tinsteadOf = {url}\n')
    monkeypatch.setenv("HOME", str(home))
    (ws / "app.py").write_text("mine\n")
    made = commit_changes(ws, "inspect/11", ADA, [], "Mine")
    assert made is not None
    assert hand_off(ws, url, "inspect/11", made.sha, "tok") == (True, "")
    assert run(bare, "rev-parse", "refs/heads/inspect/11") == made.sha
    assert all(run(decoy, "for-each-ref") == "" for decoy in decoys)


def test_a_branch_with_unsent_commits_sends_them_all(tmp_path):
    ws = workspace(tmp_path)
    bare = bare_clone(tmp_path, ws)
    shas = []
    for n in range(3):  # three commits whose hand-offs failed (say the control plane was down)
        (ws / "app.py").write_text(f"{n}\n")
        made = commit_changes(ws, "inspect/8", ADA, [], f"Run {n}")
        assert made is not None
        shas.append(made.sha)
    assert hand_off(ws, f"file://{bare}", "inspect/8", shas[-1], "tok") == (True, "")
    assert run(bare, "rev-list", "--count", "refs/heads/inspect/8") == "4"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_token_is_in_neither_argv_nor_the_error(tmp_path, monkeypatch):
    ws = workspace(tmp_path)
    token = "sandbox-token-9f8e7d6c5b4a"
    calls: list[tuple[list[str], dict]] = []
    real_run = subprocess.run

    def spy(args, **kwargs):
        calls.append((list(args), dict(kwargs.get("env") or {})))
        return real_run(args, **kwargs)

    monkeypatch.setattr(bridge.branch.subprocess, "run", spy)
    monkeypatch.setenv("INSPECT_SANDBOX_TOKEN", token)  # the bridge's own environment holds it
    sha = run(ws, "rev-parse", "HEAD")
    handed_off, error = hand_off(ws, f"http://127.0.0.1:{closed_port()}/git/handoff.git", "inspect/9", sha, token)
    assert not handed_off and error.startswith("fatal: unable to access") and token not in error
    assert not any(token in arg for args, _env in calls for arg in args)
    push_args, push_env = calls[-1]
    assert "push" in push_args and push_args[-2].startswith("http://127.0.0.1:")
    assert push_env["GIT_CONFIG_VALUE_0"] == f"Authorization: Bearer {token}"
    assert "INSPECT_SANDBOX_TOKEN" not in push_env
    assert all(token not in str(env) for _args, env in calls[:-1])  # only the push itself has it


def test_the_token_reaches_the_control_plane_as_a_bearer_header(tmp_path):
    ws = workspace(tmp_path)
    seen: list[str | None] = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/git/handoff.git"
        handed_off, error = hand_off(ws, url, "inspect/10", run(ws, "rev-parse", "HEAD"), "tok-123")
    finally:
        server.shutdown()
        server.server_close()
    assert seen and seen[0] == "Bearer tok-123"
    assert not handed_off and "403" in error and "tok-123" not in error


def test_push_errors_keep_git_s_reasons_and_redact_the_token():
    stderr = ("To http://cp/git/handoff.git\n ! [rejected]        abc -> inspect/1 (fetch first)\n"
              "remote: token tok-1 refused\nhint: Updates were rejected\nerror: failed to push some refs\n")
    assert push_errors(stderr, "tok-1") == (" ! [rejected]        abc -> inspect/1 (fetch first)\n"
                                            "remote: token [token] refused\nerror: failed to push some refs")
    assert len(push_errors("fatal: " + "x" * 900, "t")) == 500


def agent_in(ws: Path, tmp_path: Path) -> Agent:
    env = {"INSPECT_CONTROL_PLANE_URL": "http://cp/", "INSPECT_SANDBOX_ID": "1", "INSPECT_SANDBOX_TOKEN": "t",
           "HOME": str(tmp_path), "INSPECT_WORKSPACE": str(ws)}
    return Agent(BridgeConfig.from_env(env), Outbox())


def kinds_after(agent: Agent) -> list[dict]:
    return [message["event"] for _seq, message in agent.outbox.after(0)]


def test_a_runs_end_commits_hands_off_then_says_idle(tmp_path, monkeypatch):
    ws = workspace(tmp_path)
    bare = bare_clone(tmp_path, ws)
    urls = []

    def handoff_url(control_plane_url: str) -> str:
        urls.append(control_plane_url)
        return f"file://{bare}"

    monkeypatch.setattr(bridge.branch, "handoff_url", handoff_url)
    agent = agent_in(ws, tmp_path)
    spec = {"branch": "inspect/41", "author": ADA, "co_authors": [BOB, ADA], "message": "Do the thing"}
    agent.commit_specs[40] = spec
    asyncio.run(agent.end_run({"kind": "idle", "prompt_id": 40}, []))  # nothing changed yet: no commit
    assert kinds_after(agent) == [{"kind": "idle", "prompt_id": 40}]

    (ws / "app.py").write_text("done\n")
    agent.commit_specs[41] = spec
    agent.pull_requests_asked[41] = {"title": "Do it", "body": "", "draft": False}
    asyncio.run(agent.end_run({"kind": "idle", "prompt_id": 41}, [{"kind": "title", "title": "later"}]))
    sha = run(ws, "rev-parse", "HEAD")
    assert kinds_after(agent)[1:] == [
        {"kind": "commit", "prompt_id": 41, "sha": sha, "branch": "inspect/41", "author": ADA, "co_authors": [BOB],
         "message": "Do the thing\n\nCo-authored-by: Bob Byte <bob@example.com>",
         "files": [{"path": "app.py", "added": 1, "removed": 3}], "more_files": 0,
         "handed_off": True, "handoff_error": ""},
        {"kind": "pull_request_asked", "prompt_id": 41, "title": "Do it", "body": "", "draft": False},
        {"kind": "idle", "prompt_id": 41},
        {"kind": "title", "title": "later"},  # what came after the idle, after it
    ]
    assert urls == ["http://cp/"] and run(bare, "rev-parse", "refs/heads/inspect/41") == sha
    assert agent.commit_specs == {} and agent.pull_requests_asked == {}


def test_a_commit_that_fails_is_said_and_the_run_still_ends(tmp_path):
    ws = workspace(tmp_path)
    (ws / "app.py").write_text("done\n")
    agent = agent_in(ws, tmp_path)
    agent.commit_specs[41] = {"branch": "bad..name", "author": ADA, "co_authors": [], "message": "Do the thing"}
    asyncio.run(agent.end_run({"kind": "idle", "prompt_id": 41}, []))
    error, idle = kinds_after(agent)
    assert error["name"] == "CommitFailed" and "branch" in error["message"]
    assert idle == {"kind": "idle", "prompt_id": 41} and run(ws, "rev-list", "--count", "--all") == "1"


@pytest.mark.parametrize(("change", "error"), [
    ({"branch": None}, "needs a branch"),
    ({"author": "Ada"}, "an author with a name and an email"),
    ({"co_authors": [BOB, "Cy"]}, "co_authors must be a list"),
    ({"message": "  "}, "non-empty message"),
])
def test_a_prompt_with_a_malformed_commit_is_refused(change, error):
    spec = {"branch": "inspect/41", "author": ADA, "co_authors": [], "message": "Do the thing", **change}
    with pytest.raises(CommandError, match=error):
        checked_commit_spec(spec)
    assert checked_commit_spec(None) is None


def test_a_workspace_moved_to_another_branch_is_refused_and_the_sessions_branch_kept(tmp_path):
    ws = workspace(tmp_path)
    (ws / "app.py").write_text("one\n")
    first = commit_changes(ws, "inspect/7", ADA, [], "One")
    run(ws, "-c", "core.hooksPath=/dev/null", "checkout", "-q", "-b", "elsewhere")  # the agent switched branches
    (ws / "app.py").write_text("two\n")
    with pytest.raises(ValueError, match="not on the session's branch inspect/7"):
        commit_changes(ws, "inspect/7", ADA, [], "Two")
    assert run(ws, "rev-parse", "refs/heads/inspect/7") == first.sha


def test_the_plugin_package_linked_into_the_repos_opencode_folder_is_not_committed(tmp_path):
    ws = workspace(tmp_path)
    (ws / ".opencode").mkdir()
    (ws / ".opencode" / "node_modules").symlink_to(tmp_path)
    (ws / "app.py").write_text("one\n")
    made = commit_changes(ws, "inspect/8", ADA, [], "One")
    assert [f["path"] for f in made.files] == ["app.py"]
