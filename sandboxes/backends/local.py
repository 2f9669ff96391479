"""The local backend: bubblewrap-isolated processes over an overlayfs workspace.

Layout under the root folder:
  images/<name>/home/          the image: /home/agent with the repo in workspace/, setup done
  sandboxes/<id>/upper|work/   the sandbox's changes (overlay upper layer) and overlay scratch
  sandboxes/<id>/merged/       where the overlay is mounted, inside the sandbox's namespaces only
  sandboxes/<id>/tmp/          its /tmp, shared by its processes
  snapshots/<id>/upper/        a copy of a sandbox's upper layer: what changed, nothing more

A sandbox is a PID-1 process (local_init.py) in its own user, network, mount and PID
namespaces holding the overlay mount. pasta makes the user and network namespaces and
relays the sandbox's traffic (local_network.py); every command enters the namespaces
with nsenter, then runs under bubblewrap with all capabilities dropped and prlimit
limits. Killing PID 1 ends every process of the sandbox at once, and pasta with them.

Run as root, the platform starts pasta as an unprivileged host uid (SANDBOX_HOST_UID),
which the sandbox's namespaces map to their root: sandbox processes can read nothing
private on the host, and the kernel enforces the process limit (it never does for uid 0).
Run as another user, that user is the sandbox's.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings

from bridge.protocol import RESTORE_RESUMED
from sandboxes.backends import cgroups, idmap, local_builds, local_network
from sandboxes.backends.base import (
    BackendError,
    BuiltImage,
    ExecResult,
    ImageSpec,
    LogFn,
    SandboxBackend,
    SnapshotInfo,
    StartRequest,
)
from sandboxes.backends.local_builds import dir_size
from sandboxes.backends.local_isolation import (
    HOME,
    HOST_ENVIRONMENT,
    bwrap_args,
    entered_namespaces,
    give_to,
    host_uid,
    in_own_network,
    reachable_copy,
)
from sandboxes.backends.local_uids import UidSlots
from sandboxes.backends.processes import run_streaming

INIT_SCRIPT = Path(__file__).with_name("local_init.py")
INIT_MARKER = "inspect-sandbox-init"  # the init's first argument, with the sandbox's ref after it
SYSTEM_PYTHON = "/usr/bin/python3"  # the sandbox user may not reach the platform's own Python (under /root)
APPLY_SCRIPT = Path(__file__).with_name("local_apply.py")


def is_init(cmdline: list[bytes], sandbox_ref: str) -> bool:
    """Whether a process's arguments are those of this sandbox's PID 1 (local_init.py)."""
    return (cmdline[:1] == [SYSTEM_PYTHON.encode()] and INIT_MARKER.encode() in cmdline
            and sandbox_ref.encode() in cmdline)


def opaque_folders(upper: Path) -> list[str]:
    """Folders of an overlay upper layer marked opaque (their lower contents hidden), relative to it.
    The marks are `trusted.` xattrs (`user.` in a user namespace), which only the platform can read."""
    found = []
    for dirpath, dirs, _files in os.walk(upper):
        for name in dirs:
            path = os.path.join(dirpath, name)
            for attribute in ("trusted.overlay.opaque", "user.overlay.opaque"):
                try:
                    if os.getxattr(path, attribute, follow_symlinks=False) == b"y":
                        found.append(os.path.relpath(path, upper))
                        break
                except OSError:
                    pass
    return found


def mark_opaque_for_user_namespace(upper: Path) -> None:
    """Snapshots taken before sandboxes had a user namespace of their own mark opaque folders with `trusted.`
    xattrs, which a mount with `userxattr` ignores (their deleted contents would come back from the image):
    copy each mark to its `user.` name."""
    for relative in opaque_folders(upper):
        path = os.path.join(upper, relative)
        try:
            os.setxattr(path, "user.overlay.opaque", b"y", follow_symlinks=False)
        except OSError:
            pass


class LocalBackend(SandboxBackend):
    name = "local"
    shares_host_network = False  # each sandbox has a network namespace of its own (local_network.py)
    applies_snapshots_live = True

    def __init__(self, root: Path):
        self.root = Path(root).resolve()  # absolute, as /proc/self/mountinfo names mount points
        self.images = self.root / "images"
        self.sandboxes = self.root / "sandboxes"
        self.snapshots = self.root / "snapshots"
        for folder in (self.images, self.sandboxes, self.snapshots):
            folder.mkdir(parents=True, exist_ok=True)
        self.uid_slots = UidSlots(self.root / "uids", self.sandboxes)
        if host_uid() is not None:
            self.snapshots.chmod(0o700)  # snapshots keep their sandboxes' uids: no sandbox may reach them
        # Memory cgroups are the machine's: named after this sandbox root too, so two platforms on one machine
        # (two test runs) never share one.
        self.instance = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        cgroups.prune()
        self.uid_slots.release_stale()

    def group_name(self, name: str) -> str:
        """The memory cgroup of a sandbox (its ref) or a build (build-<image>) of this sandbox root."""
        return f"{self.instance}-{name}"

    # --- images ---------------------------------------------------------------

    def build_image(self, spec: ImageSpec, log: LogFn) -> BuiltImage:
        return local_builds.build_image(self.root, self.images, self.group_name(f"build-{spec.name}"), spec, log)

    def delete_image(self, image_ref: str) -> None:
        shutil.rmtree(self.images / image_ref, ignore_errors=True)

    # --- sandboxes ------------------------------------------------------------

    def _dir(self, sandbox_ref: str) -> Path:
        return self.sandboxes / sandbox_ref

    def start(self, request: StartRequest) -> str:
        lower = self.images / request.image_ref / "home"
        if not lower.is_dir():
            raise BackendError(f"image {request.image_ref} is not on this machine")
        ref = request.sandbox_id
        box = self._dir(ref)
        if box.exists():
            raise BackendError(f"sandbox {ref} already exists")
        for sub in ("work", "merged", "tmp", "run", "lower"):
            (box / sub).mkdir(parents=True)
        try:
            return self._start(request, box, lower)
        except BaseException:
            self._remove_box(box)
            self.uid_slots.give_back(ref)
            raise

    def _sandbox_uid(self, sandbox_ref: str) -> int | None:
        """The host uid a sandbox runs as (the image uid for one started before each had its own)."""
        try:
            return json.loads((self._dir(sandbox_ref) / "config.json").read_text()).get("uid", host_uid())
        except FileNotFoundError:
            return host_uid()

    def _snapshot_owner(self, snapshot_ref: str) -> int | None:
        """The uid a snapshot's files belong to: the sandbox's it was taken of."""
        try:
            return int((self.snapshots / snapshot_ref / "owner").read_text())
        except (FileNotFoundError, ValueError):
            return host_uid()  # taken before sandboxes had uids of their own

    @staticmethod
    def _remove_box(box: Path) -> None:
        """Delete a sandbox's folder, never through its view of the image (deleting would reach the image): that
        folder is only ever rmdir'ed, which fails while anything is mounted on it."""
        view = box / "lower"
        if idmap.is_mounted(view):
            idmap.detach(view)
        if not box.exists():
            return
        for entry in box.iterdir():
            if entry.name == "lower":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        try:
            view.rmdir()
            box.rmdir()
        except FileNotFoundError:
            box.rmdir()
        except OSError as error:
            raise BackendError(f"{view} is still mounted ({error}): the sandbox's folder is left in place") from None

    def _start(self, request: StartRequest, box: Path, image_home: Path) -> str:
        ref = request.sandbox_id
        base = host_uid()
        uid = self.uid_slots.take(ref, base) if base is not None else None  # as root, a uid of its own
        if request.snapshot_ref:
            saved = self.snapshots / request.snapshot_ref / "upper"
            if not saved.is_dir():
                raise BackendError(f"snapshot {request.snapshot_ref} is not on this machine")
            subprocess.run(["cp", "-a", "--reflink=auto", str(saved), str(box / "upper")], check=True)
            mark_opaque_for_user_namespace(box / "upper")
            give_to(uid, box / "upper", only_from=self._snapshot_owner(request.snapshot_ref))
        else:
            (box / "upper").mkdir()
            give_to(uid, box / "upper")
        # The sandbox's namespaces mount the overlay as the sandbox user: it owns every layer but the image.
        give_to(uid, *(box / sub for sub in ("work", "merged", "tmp", "run")))
        lower = image_home
        if uid is not None:
            # The image is the image uid's and shared: this sandbox sees it through a mount that shows its files as
            # this sandbox's uid, so overlayfs can copy up what the sandbox writes. Detached from the host's view
            # once the sandbox's own mount namespace holds it.
            idmap.bind(image_home, box / "lower", host_uid() or 0, uid)
            lower = box / "lower"
        read_only = []
        if request.clone_url.startswith("file://"):
            read_only.append(request.clone_url.removeprefix("file://"))
        mounts = {target: reachable_copy(Path(source), box / "mounts" / str(i), uid)
                  for i, (target, source) in enumerate(request.mounts.items())}
        group = cgroups.limited_group(self.group_name(ref), settings.SANDBOX_MEMORY_LIMIT_BYTES)
        config = {"env": request.env, "read_only": read_only, "mounts": mounts, "cgroup": group is not None,
                  "uid": uid}
        (box / "config.json").write_text(json.dumps(config))
        # A copy the sandbox user can read wherever the checkout is; sandboxes never see the folder.
        shutil.copy(INIT_SCRIPT, box / "run" / "init.py")
        init = [SYSTEM_PYTHON, "-I", str(box / "run" / "init.py"), INIT_MARKER, ref,
                str(lower), str(box / "upper"), str(box / "work"), str(box / "merged"), str(box / "run" / "init.ready")]
        errors = []
        # A forwarded host port taken between choosing it and pasta binding it fails the start: others are tried.
        for _attempt in range(3):
            plan = local_network.plan_for(request.control_plane_url, request.ports)
            try:
                init_pid = self._start_init(box, group, plan, init, ref, uid)
            except BackendError as e:
                errors.append(str(e))
                continue
            try:
                if uid is not None:
                    idmap.detach(box / "lower")
                inside = local_network.url_inside(request.control_plane_url, plan)
                (box / "network.json").write_text(json.dumps({
                    "inbound": {str(k): v for k, v in plan.inbound.items()}, "control_plane_url": inside}))
                (box / "init.pid").write_text(str(init_pid))
            except BaseException:
                self._kill_init(init_pid)  # its uid is given back: nothing of it may live on
                raise
            return ref
        cgroups.remove(self.group_name(ref))
        raise BackendError(f"sandbox did not start: {errors[-1]}")  # start() removes the folder

    def _start_init(self, box: Path, group: Path | None, plan: local_network.NetworkPlan, init: list[str],
                    ref: str, uid: int | None) -> int:
        """Start the sandbox's PID 1 in its namespaces; its pid on the host once its overlay is mounted."""
        ready = box / "run" / "init.ready"
        ready.unlink(missing_ok=True)
        holder = subprocess.Popen(
            [*(cgroups.join(group) if group else []), *in_own_network(plan, box / "run", uid),
             "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--mount-proc",
             *init],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(box / "init.log", "wb"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not ready.exists():
            if holder.poll() is not None or time.monotonic() > deadline:
                holder.kill()
                holder.wait()
                reason = (box / "init.log").read_text(errors="replace").strip()
                raise BackendError(reason or "timed out")
            time.sleep(0.005)
        init_pid = self._find_init(holder.pid, ref)
        if init_pid is None:
            holder.kill()
            raise BackendError("sandbox init process vanished")
        return init_pid

    @staticmethod
    def _find_init(pid: int, ref: str) -> int | None:
        """The init among the descendants of `pid` (pasta, then unshare, then the init)."""
        pending = [pid]
        while pending:
            current = pending.pop()
            try:
                cmdline = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
                children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if is_init(cmdline, ref):
                return current
            pending.extend(int(child) for child in children)
        return None

    def _init_pid(self, sandbox_ref: str) -> int | None:
        """The sandbox's PID 1 as seen from the host, if it is still ours and alive."""
        try:
            pid = int((self._dir(sandbox_ref) / "init.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        if not is_init(cmdline, sandbox_ref):
            return None  # the pid was reused by something else
        return pid

    def _enter(self, sandbox_ref: str, env: dict[str, str] | None, die_with_parent: bool = True,
               mounts: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        """The command prefix that runs a command in the sandbox with `env` (over the image's), and the
        environment the prefix itself runs with on the host."""
        pid = self._init_pid(sandbox_ref)
        if pid is None:
            raise BackendError(f"sandbox {sandbox_ref} is not running")
        box = self._dir(sandbox_ref)
        config = json.loads((box / "config.json").read_text())
        # Every command joins the sandbox's memory cgroup (the limit is re-read: it may have changed).
        group = cgroups.limited_group(self.group_name(sandbox_ref), settings.SANDBOX_MEMORY_LIMIT_BYTES) \
            if config["cgroup"] else None
        nsenter = ["nsenter", "-t", str(pid), *entered_namespaces(), "--"]
        bwrap = bwrap_args(self.root,
            box / "merged", box / "tmp", {**config["env"], **(env or {})}, die_with_parent, tuple(config["read_only"]),
            {**config["mounts"], **(mounts or {})}, address_space_limit=group is None,
            uid=config.get("uid", host_uid()),  # one started before uids per sandbox has the image's
        )
        return [*(cgroups.join(group) if group else []), *nsenter, *bwrap], HOST_ENVIRONMENT

    def exec(
        self,
        sandbox_ref: str,
        command: str,
        on_output: LogFn | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        prefix, environment = self._enter(sandbox_ref, env)
        return run_streaming([*prefix, "bash", "-c", command], on_output, timeout, env=environment)

    def start_service(self, sandbox_ref: str, name: str, command: str, env: dict[str, str] | None = None) -> None:
        """Run a long-lived command in the sandbox; it outlives the caller, not the sandbox."""
        log = open(self._dir(sandbox_ref) / f"service-{name}.log", "ab")
        prefix, environment = self._enter(sandbox_ref, env, die_with_parent=False)
        subprocess.Popen(
            [*prefix, "bash", "-c", command],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment,
        )

    def snapshot(self, sandbox_ref: str, snapshot_id: str) -> SnapshotInfo:
        upper = self._dir(sandbox_ref) / "upper"
        if not upper.is_dir():
            raise BackendError(f"sandbox {sandbox_ref} has no workspace to snapshot")
        target = self.snapshots / snapshot_id
        target.mkdir(parents=True)
        try:
            subprocess.run(["cp", "-a", "--reflink=auto", str(upper), str(target / "upper")], check=True)
            # Its files stay the sandbox's uid's (in a folder only root reaches); whichever sandbox restores it gets
            # what that uid owned, and nothing else the copy may hold.
            (target / "owner").write_text(str(self._sandbox_uid(sandbox_ref)))
        except subprocess.CalledProcessError as e:
            shutil.rmtree(target, ignore_errors=True)
            raise BackendError(f"snapshot copy failed: {e}") from e
        return SnapshotInfo(ref=snapshot_id, size_bytes=dir_size(target / "upper"))

    def apply_snapshot(self, sandbox_ref: str, snapshot_ref: str, skip: tuple[str, ...],
                       aside: dict[str, str], done: str, reset_to: str = "") -> None:
        saved = self.snapshots / snapshot_ref / "upper"
        if not saved.is_dir():
            raise BackendError(f"snapshot {snapshot_ref} is not on this machine")
        # The copy runs as a command of the sandbox (see local_apply.py), the snapshot mounted read-only.
        source = "/opt/inspect-snapshot"
        plan = {"source": source, "home": HOME, "skip": list(skip), "aside": aside, "done": done,
                "opaque": opaque_folders(saved), "reset_to": reset_to, "applied": [done, RESTORE_RESUMED]}
        command = ["python3", "-I", "-c", APPLY_SCRIPT.read_text(), json.dumps(plan)]
        if self._init_pid(sandbox_ref) is None:
            raise BackendError(f"sandbox {sandbox_ref} is not running")
        uid = self._sandbox_uid(sandbox_ref)
        staged = self._dir(sandbox_ref) / "snapshot-in"
        if uid is not None:  # the sandbox reads it as its own uid: a copy that is that uid's (O(changed))
            shutil.rmtree(staged, ignore_errors=True)
            subprocess.run(["cp", "-a", "--reflink=auto", str(saved), str(staged)], check=True)
            give_to(uid, staged, only_from=self._snapshot_owner(snapshot_ref))
        prefix, environment = self._enter(sandbox_ref, None, mounts={source: str(staged if uid is not None else saved)})
        try:
            result = run_streaming([*prefix, *command], timeout=600, env=environment)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        if result.exit_code != 0:
            raise BackendError(f"restoring the snapshot failed: {result.output.strip()[-500:]}")

    def delete_snapshot(self, snapshot_ref: str) -> None:
        shutil.rmtree(self.snapshots / snapshot_ref, ignore_errors=True)

    @staticmethod
    def _kill_init(pid: int) -> None:
        """End a sandbox's PID 1, and so every process of the sandbox, and wait for it (10 s at most)."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def terminate(self, sandbox_ref: str) -> None:
        pid = self._init_pid(sandbox_ref)
        if pid is not None:
            self._kill_init(pid)
        self._remove_box(self._dir(sandbox_ref))
        cgroups.remove(self.group_name(sandbox_ref))
        self.uid_slots.give_back(sandbox_ref)

    def is_alive(self, sandbox_ref: str) -> bool:
        return self._init_pid(sandbox_ref) is not None

    def control_plane_url(self, sandbox_ref: str) -> str:
        try:
            return json.loads((self._dir(sandbox_ref) / "network.json").read_text()).get("control_plane_url") or ""
        except (FileNotFoundError, ValueError):
            return ""

    def endpoints(self, sandbox_ref: str, ports: list[int]) -> dict[int, str]:
        """The host ports pasta forwards to the sandbox's own (local_network.py); a port not forwarded
        (not asked for at start) has no address."""
        try:
            inbound = json.loads((self._dir(sandbox_ref) / "network.json").read_text())["inbound"]
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise BackendError(f"sandbox {sandbox_ref} has no network") from e
        missing = [port for port in ports if str(port) not in inbound]
        if missing:
            raise BackendError(f"sandbox {sandbox_ref} does not forward port {missing[0]}")
        return {port: f"http://127.0.0.1:{inbound[str(port)]}" for port in ports}
