"""Origin repositories for the benchmarks: real git repos reached by file:// URLs."""

import os
import subprocess
from pathlib import Path

from bench._common import open_dir

MB = 1024 * 1024


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=bench@example.com", "-c", "user.name=Bench", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


class Origin:
    """A repo of random (incompressible) files, so sizes on disk are what they say."""

    def __init__(self, path: Path, files: int, total_bytes: int):
        self.path = open_dir(path)
        git(path, "init", "-q", "-b", "main")
        # Random data neither compresses nor deltas: skip zlib's work and the delta search
        # (which alone takes ~40 s when a 500 MB origin is cloned).
        git(path, "config", "core.compression", "0")
        git(path, "config", "pack.compression", "0")
        git(path, "config", "pack.window", "0")
        size = total_bytes // files
        for index in range(files):
            target = path / f"src/d{index % 20:02d}/f{index:04d}.bin"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(os.urandom(size))
        (path / "README.md").write_text("# bench repo\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial")
        self.commits = 0

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def new_commit(self) -> str:
        """A small change on main, so a sandbox's sync has something to fetch."""
        self.commits += 1
        (self.path / "CHANGES.txt").write_text(f"change {self.commits}\n")
        git(self.path, "add", "CHANGES.txt")
        git(self.path, "commit", "-q", "-m", f"change {self.commits}")
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")
