"""PID 1 of a local sandbox: mounts its overlay workspace, then reaps orphans forever.

Runs inside `unshare --mount --pid --mount-proc`, itself inside the sandbox's user and network
namespaces (see local.py), so the overlay mount lives in the sandbox's own mount namespace, and
killing this process ends every process of the sandbox. Standalone on purpose: it runs under the
system's python3 and must not import Django.

usage: local_init.py MARKER SANDBOX_REF LOWER UPPER WORK MERGED READY_FILE
"""

import os
import signal
import subprocess
import sys
import time


def main() -> None:
    # The sandbox's processes run as this process's uid: none of their signals may end the sandbox (SIGKILL,
    # which cannot be ignored, only the platform can send: PID 1 of a namespace ignores it from inside).
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, signal.SIG_IGN)
    _marker, _ref, lower, upper, work, merged, ready_file = sys.argv[1:8]
    # In a user namespace overlayfs keeps its marks (whiteouts, opaque folders) in user. xattrs.
    options = f"lowerdir={lower},upperdir={upper},workdir={work},userxattr"
    result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, merged], capture_output=True)
    if result.returncode != 0:
        sys.stderr.write("overlay mount failed: " + result.stderr.decode(errors="replace"))
        sys.exit(1)
    with open(ready_file, "w") as f:
        f.write(str(os.getpid()))
    sys.stdout.flush()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(1)


if __name__ == "__main__":
    main()
