"""The session's branch in the workspace: commit what a prompt's run changed on it, and hand it to the control
plane (HANDOFF_GIT_PATH), which pushes it on to GitHub. Plain functions around `git` subprocesses."""

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .protocol import HANDOFF_GIT_PATH, MAX_COMMIT_FILES, CommitFile, Person

GIT_TIMEOUT = 120.0  # add, commit and the rest, in a large repo
PUSH_TIMEOUT = 120.0
MAX_PERSON_CHARS = 200
MAX_ERROR_CHARS = 500
# The repo's hooks are the repo's code (they could hang, or be hostile), and no key signs in a sandbox.
# fsmonitor is only a speed-up, and another command the repo's config could name.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", "-c", "core.fsmonitor=false")
# The lines of git's stderr that say why a push failed (not its hints and progress).
ERROR_PREFIXES = ("error:", "fatal:", "remote:", " ! ")


class GitError(Exception):
    pass


@dataclass
class Commit:
    sha: str
    branch: str
    author: Person
    co_authors: list[Person]  # deduplicated, without the author
    message: str  # the whole message, trailers included
    files: list[CommitFile]  # at most MAX_COMMIT_FILES
    more_files: int


def git_env(**extra: str) -> dict[str, str]:
    """The bridge's environment without its own variables (the token among them: git runs the repo's filters,
    which are the repo's code) nor GIT_* ones (a trace would print the push's header), in the C locale so that
    git's messages start with `error:` and `fatal:`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_", "GIT_"))}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    env.update(extra)
    return env


def git(cwd: Path | str, *args: str, env: dict[str, str] | None = None, input: bytes | None = None,
        timeout: float = GIT_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess:
    """Run `git <args>` in `cwd`; GitError when it fails (with `check`) or takes over `timeout` seconds."""
    name = next((a for a in args if not a.startswith("-") and "=" not in a), "")  # the subcommand, after -c
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env if env is not None else git_env(), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {name} took over {timeout:g} s") from None
    if check and done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()[-MAX_ERROR_CHARS:]
        raise GitError(f"git {name} failed (exit {done.returncode}): {reason}")
    return done


def check_branch(workspace: Path, branch: str) -> None:
    """ValueError unless `branch` is a plain branch name git accepts (not HEAD, no `-` first, no `@{-1}`)."""
    if not isinstance(branch, str) or not branch:
        raise ValueError("the branch must be a non-empty string")
    checked = git(workspace, "check-ref-format", "--branch", branch, check=False)
    if checked.returncode != 0 or checked.stdout.decode(errors="replace").strip() != branch:
        raise ValueError(f"invalid branch name {branch!r}")


def check_person(person: object, role: str = "author") -> Person:
    """The person as git will write them, or ValueError: a name and an email without a newline, `<` or `>`
    (they would break the commit's header or the trailer) and at most MAX_PERSON_CHARS characters each."""
    if not isinstance(person, dict):
        raise ValueError(f"the {role} must be an object with a name and an email")
    checked: dict[str, str] = {}
    for field in ("name", "email"):
        value = person.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"the {role}'s {field} must be a non-empty string")
        if any(c in value for c in "\n\r\0<>"):
            raise ValueError(f"the {role}'s {field} must not contain a newline, '<' or '>': {value!r}")
        if len(value) > MAX_PERSON_CHARS:
            raise ValueError(f"the {role}'s {field} is over {MAX_PERSON_CHARS} characters")
        checked[field] = value.strip()
    return {"name": checked["name"], "email": checked["email"]}


def co_author_list(author: Person, co_authors: list[Person]) -> list[Person]:
    """Each co-author once (by email, as GitHub attributes them), never the author."""
    seen = {author["email"].lower()}
    unique: list[Person] = []
    for person in co_authors:
        if person["email"].lower() not in seen:
            seen.add(person["email"].lower())
            unique.append(person)
    return unique


def full_message(message: str, co_authors: list[Person]) -> str:
    """The message, then a blank line and one Co-authored-by trailer per co-author."""
    text = message.strip()
    if not text:
        raise ValueError("the commit message is empty")
    if co_authors:
        text += "\n\n" + "\n".join(f"Co-authored-by: {p['name']} <{p['email']}>" for p in co_authors)
    return text


def use_branch(workspace: Path, branch: str) -> None:
    """Put the workspace on `branch`, keeping the working tree and the index: the first time, from wherever HEAD
    is (a detached HEAD too). Once the branch exists, a workspace moved elsewhere (the agent checked out another
    branch) is refused: moving the branch there would lose its commits and every later hand-off."""
    head = git(workspace, "symbolic-ref", "-q", "HEAD", check=False).stdout.decode(errors="replace").strip()
    if head == f"refs/heads/{branch}":
        return
    exists = git(workspace, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
    if exists:
        where = head.removeprefix("refs/heads/") or "a detached HEAD"
        raise ValueError(f"the workspace is on {where}, not on the session's branch {branch}: "
                         f"`git checkout {branch}` brings it back")
    git(workspace, *NO_HOOKS, "checkout", "-q", "-B", branch)


def commit_changes(workspace: Path, branch: str, author: object, co_authors: list, message: str) -> Commit | None:
    """Commit everything that changed in the workspace on `branch`, by `author` (author and committer), with a
    Co-authored-by trailer per co-author. None when nothing changed. ValueError for bad input (nothing is
    changed then), GitError when git fails."""
    checked_author = check_person(author)
    if not isinstance(co_authors, list):
        raise ValueError("co_authors must be a list")
    others = co_author_list(checked_author, [check_person(p, "co-author") for p in co_authors])
    if not isinstance(message, str):
        raise ValueError("the commit message must be a string")
    text = full_message(message, others)
    check_branch(workspace, branch)
    use_branch(workspace, branch)
    # The plugin package the bridge links into a repo's own .opencode/ (bridge/config.py) is not the repo's.
    git(workspace, *NO_HOOKS, "add", "-A", "--", ".", ":(exclude).opencode/node_modules")
    staged = git(workspace, "diff", "--cached", "--quiet", check=False)
    if staged.returncode == 0:
        return None
    if staged.returncode != 1:
        raise GitError(f"git diff failed: {staged.stderr.decode(errors='replace').strip()[-MAX_ERROR_CHARS:]}")
    # The environment names the author and committer, over whatever the user's or the repo's config says.
    env = git_env(GIT_AUTHOR_NAME=checked_author["name"], GIT_AUTHOR_EMAIL=checked_author["email"],
                  GIT_COMMITTER_NAME=checked_author["name"], GIT_COMMITTER_EMAIL=checked_author["email"])
    git(workspace, *NO_HOOKS, "commit", "-q", "--no-verify", "--cleanup=verbatim", "-F", "-",
        env=env, input=(text + "\n").encode())
    sha = git(workspace, "rev-parse", "--verify", "HEAD").stdout.decode().strip()
    files, more = commit_files(workspace, sha)
    return Commit(sha=sha, branch=branch, author=checked_author, co_authors=others, message=text,
                  files=files, more_files=more)


def commit_files(workspace: Path, rev: str = "HEAD") -> tuple[list[CommitFile], int]:
    """The files `rev` changed with their added and removed lines (None for a binary file), at most
    MAX_COMMIT_FILES, and how many more there are."""
    shown = git(workspace, "show", "--numstat", "--format=", "-z", "--no-ext-diff", "--no-textconv",
                "--no-relative", rev, "--").stdout
    files: list[CommitFile] = []
    more = 0
    for file in parse_numstat(shown):
        if len(files) < MAX_COMMIT_FILES:
            files.append(file)
        else:
            more += 1
    return files, more


def parse_numstat(output: bytes) -> list[CommitFile]:
    """`--numstat -z` records: `added\\tremoved\\tpath\\0`, or for a rename `added\\tremoved\\t\\0old\\0new\\0`
    (its new path is kept). `-` counts are a binary file's."""
    fields = output.split(b"\0")
    files: list[CommitFile] = []
    i = 0
    while i < len(fields):
        record = fields[i]
        i += 1
        if not record.strip(b"\n"):
            continue
        added, removed, path = record.lstrip(b"\n").split(b"\t", 2)
        if not path:  # a rename or copy: the old and new paths follow
            path = fields[i + 1]
            i += 2
        files.append({"path": path.decode(errors="replace"), "added": None if added == b"-" else int(added),
                      "removed": None if removed == b"-" else int(removed)})
    return files


def handoff_url(control_plane_url: str) -> str:
    return control_plane_url.rstrip("/") + HANDOFF_GIT_PATH


def push_errors(stderr: str, token: str) -> str:
    """What git said about a failed push: its error lines, at most MAX_ERROR_CHARS, never the token."""
    lines = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIXES)]
    text = "\n".join(line.rstrip() for line in lines) or stderr.strip()
    if token:
        text = text.replace(token, "[token]")
    return text[:MAX_ERROR_CHARS]


def hand_off(workspace: Path, url: str, branch: str, sha: str, token: str,
             timeout: float = PUSH_TIMEOUT) -> tuple[bool, str]:
    """Push `sha` to `url` as refs/heads/<branch>, never forced, with `token` as a bearer token. Returns
    (handed off, why not).

    The push runs from an empty scratch repository that borrows the workspace's objects: the workspace's
    config and the user's are the agent's to write, and could send the push (and its token) elsewhere
    (url.*.insteadOf, http.proxy) or run a command with it. The token travels in the environment, not in
    argv, which every user of the host can read."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
        return False, f"not a commit id: {sha!r}"
    try:
        check_branch(workspace, branch)
        common = git(workspace, "rev-parse", "--git-common-dir").stdout.decode().strip()
    except (ValueError, GitError) as e:
        return False, str(e)[:MAX_ERROR_CHARS]
    git_dir = Path(workspace, common).resolve()
    with tempfile.TemporaryDirectory(prefix="inspect-handoff-") as scratch:
        # No global config (HOME, XDG and GIT_CONFIG_GLOBAL point into the scratch folder; older gits read
        # only the first two). The system's config is root's, not the agent's.
        env = git_env(HOME=scratch, XDG_CONFIG_HOME=scratch, GIT_CONFIG_GLOBAL=os.devnull)
        repo = Path(scratch, "repo.git")
        try:
            git(scratch, "init", "-q", "--bare", "--template=", str(repo), env=env)
        except GitError as e:
            return False, str(e)[:MAX_ERROR_CHARS]
        (repo / "objects" / "info").mkdir(parents=True, exist_ok=True)
        (repo / "objects" / "info" / "alternates").write_text(f"{git_dir / 'objects'}\n")
        if (git_dir / "shallow").is_file():  # a shallow clone's cut-off commits, or its history looks broken
            shutil.copyfile(git_dir / "shallow", repo / "shallow")
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Bearer {token}")
        try:
            pushed = git(scratch, f"--git-dir={repo}", *NO_HOOKS, "push", "--quiet", "--no-verify", "--",
                         url, f"{sha}:refs/heads/{branch}", env=env, timeout=timeout, check=False)
        except GitError as e:
            return False, str(e)
    if pushed.returncode == 0:
        return True, ""
    reason = push_errors(pushed.stderr.decode(errors="replace"), token)
    return False, reason or f"git push failed (exit {pushed.returncode})"
