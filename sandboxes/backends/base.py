"""The small interface every sandbox backend implements (local, modal)."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

LogFn = Callable[[str], None]


class BackendError(Exception):
    """An operation failed; the message is fit to show an admin."""


@dataclass(frozen=True)
class ImageSpec:
    name: str  # unique across the backend, e.g. "myrepo-17"
    clone_url: str
    branch: str
    setup_commands: list[str]
    start_commands: list[str]
    env: dict[str, str]
    use_devcontainer: bool = False
    forward_ports: list[int] = field(default_factory=list)  # served by the start commands
    # Only for the setup commands; redacted from the log, never stored in the image's env.
    build_secrets: dict[str, str] = field(default_factory=dict)
    # Those of build_secrets that the repo's own commands (devcontainer.json's) get too.
    repo_command_secrets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    commit_sha: str
    size_bytes: int
    env: dict[str, str]
    start_commands: list[str]
    forward_ports: list[int]


@dataclass(frozen=True)
class StartRequest:
    sandbox_id: str
    image_ref: str
    env: dict[str, str]
    snapshot_ref: str | None = None
    clone_url: str = ""  # where the workspace syncs from
    # Read-only folders of the platform (its tools, the bridge): path in the sandbox -> host path.
    mounts: dict[str, str] = field(default_factory=dict)
    # Where the sandbox reaches the control plane (its bridge socket, the model proxy, screenshot uploads).
    control_plane_url: str = ""
    # The ports the control plane reaches the sandbox's services on (VS Code, the desktop, previews).
    ports: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class SnapshotInfo:
    ref: str
    size_bytes: int


class SandboxBackend(ABC):
    name: str
    # Whether its sandboxes listen on the host's own network (ports are shared between sandboxes).
    shares_host_network: bool = False

    @abstractmethod
    def build_image(self, spec: ImageSpec, log: LogFn) -> BuiltImage:
        """Clone the repo at the branch head and run its setup; stream progress to `log`."""

    @abstractmethod
    def delete_image(self, image_ref: str) -> None: ...

    @abstractmethod
    def start(self, request: StartRequest) -> str:
        """Start a sandbox from an image (or a snapshot of one); return its ref."""

    @abstractmethod
    def exec(
        self,
        sandbox_ref: str,
        command: str,
        on_output: LogFn | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run a shell command in the workspace, streaming its output lines."""

    @abstractmethod
    def start_service(self, sandbox_ref: str, name: str, command: str, env: dict[str, str] | None = None) -> None:
        """Run a long-lived command (a dev server) in the background of the sandbox."""

    @abstractmethod
    def snapshot(self, sandbox_ref: str, snapshot_id: str) -> SnapshotInfo:
        """Save what changed since the image; restoring it costs that, not the repo's size."""

    @abstractmethod
    def delete_snapshot(self, snapshot_ref: str) -> None: ...

    # Whether apply_snapshot works: a follow-up then restores into a warm pooled sandbox.
    applies_snapshots_live: bool = False

    def apply_snapshot(self, sandbox_ref: str, snapshot_ref: str, skip: tuple[str, ...],
                       aside: dict[str, str], done: str, reset_to: str = "") -> None:
        """Bring a running sandbox's home to a snapshot taken on the same image: its changes written, its
        deletions made, except the `skip` paths (the running services' own state). Files at `aside` paths
        go to the path given instead; `done` is written last. Paths are relative to the home. With a
        `reset_to` commit, the workspace is first reset to it (the commit the snapshot was made on, where
        the sandbox was synced to another). Applied once: a second call (a task redelivered) does nothing."""
        raise BackendError(f"the {self.name} backend cannot restore a snapshot into a running sandbox")

    @abstractmethod
    def terminate(self, sandbox_ref: str) -> None:
        """End every process of the sandbox and free what it holds. Idempotent."""

    @abstractmethod
    def is_alive(self, sandbox_ref: str) -> bool: ...

    def control_plane_url(self, sandbox_ref: str) -> str:
        """Where the sandbox reaches the control plane, if not at the URL it was started with ("")."""
        return ""

    @abstractmethod
    def endpoints(self, sandbox_ref: str, ports: list[int]) -> dict[int, str]:
        """Where the control plane reaches each of the sandbox's service ports."""


def sync_script(branch: str) -> str:
    """Bring a fresh workspace to the branch head. Shared by every backend."""
    from shlex import quote

    ref = quote(f"refs/heads/{branch}")
    return (
        "set -e; cd ~/workspace; "
        f"git fetch --quiet --no-tags origin {ref}; "
        "git reset --quiet --hard FETCH_HEAD; "
        "git rev-parse HEAD"
    )
