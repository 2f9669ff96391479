"""Unified diffs of the files an editing tool changes: the bridge reads each file when the tool
starts (before it may write: edits wait for the bridge's permission answer) and again when it
finished, and diffs the two. This does not depend on what OpenCode puts in tool metadata."""

import difflib
import re
from pathlib import Path

MAX_BYTES = 1024 * 1024
PATCH_FILE = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$|^\*\*\* Move to: (.+)$", re.MULTILINE)
MISSING = None  # the file did not exist


def tool_paths(tool: str, tool_input: dict, workspace: Path) -> list[Path]:
    """The files a tool call may change, as absolute paths."""
    names: list[str] = []
    for key in ("filePath", "file_path", "path"):
        if isinstance(tool_input.get(key), str) and tool in ("write", "edit", "multiedit", "patch", "apply_patch"):
            names.append(tool_input[key])
            break
    patch = tool_input.get("patchText") or tool_input.get("patch")
    if isinstance(patch, str):
        names += [a or b for a, b in PATCH_FILE.findall(patch)]
    paths = []
    for name in names:
        path = Path(name.strip())
        path = path if path.is_absolute() else workspace / path
        if path not in paths:
            paths.append(path)
    return paths


def read(path: Path) -> bytes | None:
    try:
        stat = path.stat()
        if stat.st_size > MAX_BYTES:  # too large to diff: tell changed from unchanged only
            return b"\0large %d %d" % (stat.st_size, stat.st_mtime_ns)
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return MISSING
    except OSError:
        return b"\0unreadable"


def display_path(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def unified_diff(name: str, before: bytes | None, after: bytes | None) -> str | None:
    """A git-style unified diff of one file, or None when nothing changed."""
    if before == after:
        return None
    old = "/dev/null" if before is MISSING else f"a/{name}"
    new = "/dev/null" if after is MISSING else f"b/{name}"
    if b"\0" in (before or b"") or b"\0" in (after or b""):
        return f"Binary files {old} and {new} differ\n"
    lines = difflib.unified_diff(
        (before or b"").decode(errors="replace").splitlines(keepends=True),
        (after or b"").decode(errors="replace").splitlines(keepends=True),
        old, new,
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


class FileTracker:
    """Contents of the files each running tool call may change, until it finishes."""

    def __init__(self, workspace: Path):
        self.workspace = workspace
        self.before: dict[str, dict[Path, bytes | None]] = {}

    def started(self, call_id: str, tool: str, tool_input: dict) -> None:
        paths = tool_paths(tool, tool_input, self.workspace)
        if paths and call_id not in self.before:
            self.before[call_id] = {path: read(path) for path in paths}

    def finished(self, call_id: str) -> list[dict]:
        """file_edited events for what the call changed (a failed call may have changed some files too)."""
        before = self.before.pop(call_id, {})
        events = []
        for path, old in before.items():
            name = display_path(path, self.workspace)
            diff = unified_diff(name, old, read(path))
            if diff is not None:
                events.append({"kind": "file_edited", "path": name, "diff": diff})
        return events

    def forget(self) -> None:
        self.before.clear()
