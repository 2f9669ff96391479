"""What the control plane and the bridge share: the messages between them, the paths in a sandbox, and
the versions of the tools a sandbox runs. docs/bridge-protocol.md describes the protocol in prose.

This is the only bridge module the control plane imports (`make lint` checks it), and it imports only
the standard library: the bridge runs it under the sandbox's own python3.
"""

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, get_args

# --- versions, pinned here and only here ------------------------------------------------------

BRIDGE_VERSION = "1"
OPENCODE_VERSION = "1.18.33"
# The plugin package OpenCode installs into its config folders at start-up (same version as OpenCode).
OPENCODE_PLUGIN_PACKAGE = "@opencode-ai/plugin"
WEBSOCKETS_VERSION = "17.4"
# VS Code in the browser. 4.100.3 is the newest release that runs on Node 20 (the Debian/NodeSource Node here).
CODE_SERVER_VERSION = "4.100.3"

# --- paths ------------------------------------------------------------------------------------

# The tools folder (OpenCode, code-server, the bridge's packages), mounted read-only in every sandbox here.
TOOLS_IN_SANDBOX = Path("/opt/inspect")
# Inside the tools folder.
OPENCODE_BIN = Path("opencode/node_modules/.bin/opencode")
CODE_SERVER_BIN = Path("code-server/node_modules/.bin/code-server")
VSCODE_DIR = Path("code-server/node_modules/code-server/lib/vscode")  # VS Code itself, inside code-server

# Every sandbox's layout: the agent's home, with the repo in workspace/ (backends start the bridge there).
SANDBOX_HOME = Path("/home/agent")
SANDBOX_WORKSPACE = SANDBOX_HOME / "workspace"

# A snapshot restored into a running sandbox (a pooled one; see docs/sandboxes.md) brings its home's
# changes, except the folders of the services already running there (RESTORE_SKIP). OpenCode's database
# is put aside instead (RESTORE_ASIDE): the bridge replays the conversation from it into the running
# OpenCode (`resume`) once RESTORE_DONE exists. Paths are relative to the home.
RESTORE_DIR = ".inspect-restore"
RESTORE_SKIP = (".local/share/opencode", ".local/state", ".cache", ".config/opencode",
                ".local/share/code-server", ".config/code-server", RESTORE_DIR)
RESTORE_ASIDE = {f".local/share/opencode/{name}": f"{RESTORE_DIR}/{name}"
                 for name in ("opencode.db", "opencode.db-wal")}
RESTORE_DONE = f"{RESTORE_DIR}/done"
RESTORE_RESUMED = f"{RESTORE_DIR}/resumed"  # left by the bridge: a `resume` sent again does nothing

# The model the bridge warms a waiting OpenCode up with: the control plane's model proxy answers it
# itself (model_providers/wires.py), so the warm-up reaches no provider.
WARM_UP_PROVIDER = "inspect-warm-up"
WARM_UP_MODEL = "warm-up"

# --- services ---------------------------------------------------------------------------------

# The ports a report may give for VS Code and the desktop (a preview reports one of the repo's own ports).
# Which port the control plane reaches is the backend's (`endpoints`: only ports forwarded at start).
SERVICE_PORTS = (32768, 60999)
# Where a sandbox has a network of its own (every backend now), VS Code and the desktop listen on fixed ports
# there, so the platform can forward them when it starts the sandbox: the first of this range that the
# repo's dev servers do not use.
FIXED_SERVICE_PORTS = range(40000, 40100)


def workspace_ports(dev_ports: Collection[int]) -> dict[str, int]:
    """The ports VS Code ("ide") and the desktop listen on inside a sandbox whose dev servers use `dev_ports`."""
    free = [port for port in FIXED_SERVICE_PORTS if port not in dev_ports]
    return {"ide": free[0], "desktop": free[1]}

# VS Code and the desktop answer only requests that carry their sandbox's service secret in a cookie, which the
# platform's proxies add (ide/targets.py): reaching the port is not enough. The bridge gets the secret as
# SERVICE_SECRET_ENV. code-server's own password mode reads its cookie (`--auth password`, the secret as
# HASHED_PASSWORD); the desktop's websockify checks its cookie with bridge/desktop_auth.py.
SERVICE_SECRET_ENV = "INSPECT_SERVICE_SECRET"
SERVICE_SECRET_COOKIES = {"ide": "code-server-session", "desktop": "inspect-desktop-secret"}

SERVICE_NAME = re.compile(r"^(ide|desktop|dev|preview-\d{1,5})$")
ServiceState = Literal["starting", "ready", "failed", "stopped"]
SERVICE_STATES: frozenset[str] = frozenset(get_args(ServiceState))


class VSCodeFacts(TypedDict):
    """What the control plane renders VS Code's page from while code-server starts (ide/workbench_page.py)."""
    commit: str
    folder: str
    data: str


def vscode_data(home: Path) -> Path:
    return home / ".local/share/code-server"


def vscode_facts(tools_dir: Path, home: Path, folder: Path) -> dict[str, VSCodeFacts]:
    """{"vscode": facts} for the `ide` service's report: its commit (from the installed product.json; {} if
    unreadable), the folder it opens and its data folder."""
    try:
        product = json.loads((tools_dir / VSCODE_DIR / "product.json").read_text())
        commit = product.get("commit")
    except (OSError, ValueError, AttributeError):
        commit = None
    if not isinstance(commit, str):
        return {}
    return {"vscode": {"commit": commit, "folder": str(folder), "data": str(vscode_data(home))}}


# --- commands: control plane -> bridge ----------------------------------------------------------

class ModelSpec(TypedDict):
    providerID: str
    modelID: str


class Person(TypedDict):
    """Someone as git names them: a commit's author or a co-author."""
    name: str
    email: str


class CommitSpec(TypedDict):
    """What the bridge commits when a prompt's run ends, before it reports the run's `idle`: everything that
    changed, on the session's branch, then the branch handed to the control plane (HANDOFF_GIT_PATH). Nothing
    changed: no commit, no `commit` event."""
    branch: str  # the session's branch, e.g. inspect/12
    author: Person  # whose prompt ran
    co_authors: list[Person]  # other members whose prompts shaped the change (Co-authored-by trailers)
    message: str  # the commit message without its trailers


class PromptCommand(TypedDict):
    name: Literal["prompt"]
    prompt_id: int
    text: str
    author: str  # display name; not passed to OpenCode
    model: ModelSpec | None
    opencode_session_id: str | None  # None: create one
    commit: NotRequired[CommitSpec | None]  # None: commit nothing (a prompt of a former member)


class StopCommand(TypedDict):
    name: Literal["stop"]
    opencode_session_id: NotRequired[str]  # only that session's run


class RestartServiceCommand(TypedDict):
    name: Literal["restart_service"]
    service: str  # ide, desktop, dev or preview-<port>


class ScreenshotCommand(TypedDict):
    name: Literal["screenshot"]
    target: str  # desktop, preview-<port> or an http(s) URL
    taken_by: str  # a username


class PlainCommand(TypedDict):
    """A command without fields of its own."""
    name: Literal["sync_done", "claimed", "prepare_snapshot", "resume", "shutdown"]


Command = PromptCommand | StopCommand | RestartServiceCommand | ScreenshotCommand | PlainCommand
CommandName = Literal["prompt", "stop", "restart_service", "screenshot",
                      "sync_done", "claimed", "prepare_snapshot", "resume", "shutdown"]
COMMAND_NAMES: frozenset[str] = frozenset(get_args(CommandName))


class Ack(TypedDict):
    type: Literal["ack"]
    id: str  # the bridge event's id


class Refused(TypedDict):
    """An event the control plane will never store (a kind a bridge may not send, too deep, malformed): the
    bridge drops it instead of sending it again after every reconnect."""
    type: Literal["refused"]
    id: str  # the bridge event's id
    message: str  # why


class ErrorMessage(TypedDict):
    type: Literal["error"]
    message: str


# Limits on what a bridge sends, checked by the control plane before it parses a message (its size) and before
# it stores an event (its nesting); the bridge keeps its own events within them (bridge/outbox.py).
MAX_BRIDGE_MESSAGE_BYTES = 256 * 1024
MAX_EVENT_DEPTH = 32


def json_depth(value: object, limit: int = MAX_EVENT_DEPTH) -> int:
    """How deep lists and objects nest in `value` (a scalar is 0), counted without recursion and up to
    limit + 1 at most: enough to refuse what is too deep."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def command_message(command_id: str, command: Command) -> dict:
    """The JSON object that carries `command`: {"type": "command", "command_id", ...the command's own fields}.
    `command_id` is unique across control-plane processes and restarts (a uuid4): the bridge answers an id it
    has seen again with its first result instead of running the command twice."""
    return {"type": "command", "command_id": command_id, **command}


# --- events and reports: bridge -> control plane ----------------------------------------------------

EventKind = Literal[
    "agent_session", "prompt_started", "busy", "idle", "text_delta", "text", "tool_started", "tool_finished",
    "file_edited", "step", "title", "retry", "error", "service", "screenshot_failed", "commit",
    "pull_request_asked",
]
# The only kinds a bridge may send (sessions/bridge_events.py refuses any other): never one the control plane
# writes itself, such as prompt_queued, status, screenshot or sandbox_phase.
EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))
MAX_EVENT_ID_LENGTH = 100


class ServiceReport(TypedDict):
    """Where a workspace service is (the port the control plane's proxy connects to), and its state."""
    name: str  # ide, desktop, dev or preview-<port>
    state: ServiceState
    port: int | None
    reason: str
    vscode: NotRequired[VSCodeFacts]  # the ide service only


class ServiceEvent(ServiceReport):
    """A service report as the bridge sends it: an event of kind `service`."""
    kind: Literal["service"]


# The bridge pushes the session's branch here (on the control plane, with its own token as a bearer token): the
# control plane pushes it on to GitHub with the person's token, which never enters the sandbox.
HANDOFF_GIT_PATH = "/git/handoff.git"
MAX_COMMIT_FILES = 200  # a commit event lists at most this many files (and says how many more)
# A pull request's title and description, as the agent's tool and the session page may give them.
PULL_REQUEST_MAX_TITLE_CHARS = 256
PULL_REQUEST_MAX_BODY_CHARS = 60_000


class CommitFile(TypedDict):
    path: str
    added: int | None  # lines; None for a binary file
    removed: int | None


class CommitEvent(TypedDict):
    """A commit the bridge made on the session's branch when a run ended (event kind `commit`, before `idle`)."""
    kind: Literal["commit"]
    prompt_id: int
    sha: str
    branch: str
    author: Person
    co_authors: list[Person]
    message: str  # the whole message, trailers included
    files: list[CommitFile]  # at most MAX_COMMIT_FILES
    more_files: int  # how many files were left out of `files`
    handed_off: bool  # the control plane has the branch at this commit
    handoff_error: str  # why not, when it has not


class PullRequestAsked(TypedDict):
    """The agent called its create_pull_request tool in the run of `prompt_id` (sent after that run's commit,
    before its `idle`)."""
    kind: Literal["pull_request_asked"]
    prompt_id: int
    title: str
    body: str
    draft: bool


class Hello(TypedDict):
    type: Literal["hello"]
    bridge_version: str
    opencode_version: str
    synced: bool  # False: send `sync_done` (again) once the workspace is synced


class EventMessage(TypedDict):
    type: Literal["event"]
    id: str  # unique per sandbox; stored once, acknowledged, resent after a reconnect until it is
    event: dict  # {"kind": EventKind, ...the kind's fields}


class Heartbeat(TypedDict):
    type: Literal["heartbeat"]
    busy: bool  # a prompt is running


class CommandResult(TypedDict):
    type: Literal["command_result"]
    command_id: str
    ok: bool
    error: str | None


BridgeMessage = Hello | EventMessage | Heartbeat | CommandResult
