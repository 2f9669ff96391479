"""Gzip variants of static files, kept on disk beside them (`<file>.gz`).

Serving a file compressed then costs a file read instead of compressing it per request (code-server
spends ~0.5 s of CPU gzipping VS Code's 11 MB workbench.js for every browser). No Django here: the
install command and the proxy both use it.
"""

import gzip
import os
import shutil
import tempfile
from pathlib import Path

LEVEL = 6  # level 9 makes workbench.js 0.3 % smaller for 50 % more CPU
MIN_SIZE = 1024  # smaller files gain next to nothing (express' compression threshold too)
# Text, fonts and WebAssembly; images, audio and woff2 are compressed already.
EXTENSIONS = frozenset({".js", ".mjs", ".css", ".json", ".html", ".htm", ".svg", ".ttf", ".wasm", ".map", ".txt",
                        ".md", ".xml", ".csv"})


def compressible(path: Path, size: int) -> bool:
    return path.suffix.lower() in EXTENSIONS and size >= MIN_SIZE


def variant_path(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


def fresh_variant(path: Path) -> Path | None:
    """The .gz beside `path` if there is one at least as new as the file."""
    variant = variant_path(path)
    try:
        return variant if variant.stat().st_mtime_ns >= path.stat().st_mtime_ns else None
    except OSError:
        return None


def ensure_variant(path: Path) -> Path | None:
    """The fresh .gz beside `path`, written now if missing or stale; None if it cannot be written
    (a read-only folder): the file is then served uncompressed."""
    found = fresh_variant(path)
    if found is not None:
        return found
    variant = variant_path(path)
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
            try:
                # No name or time in the header: the same file always gives the same bytes.
                with open(path, "rb") as source, gzip.GzipFile(filename="", mode="wb", compresslevel=LEVEL,
                                                               fileobj=tmp, mtime=0) as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
                os.chmod(tmp.name, 0o644)
                os.replace(tmp.name, variant)  # whole or not at all, also with two writers at once
            except BaseException:
                os.unlink(tmp.name)
                raise
    except OSError:
        return None
    return variant


def precompress(folder: Path) -> int:
    """Write the missing or stale .gz of every compressible file under `folder`; how many were written.
    Source maps are left to the first request for them: only developer tools ask for them."""
    written = 0
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(parent) / name
            if path.suffix in (".gz", ".map") or path.is_symlink():
                continue
            if compressible(path, path.stat().st_size) and fresh_variant(path) is None:
                if ensure_variant(path) is None:
                    raise OSError(f"cannot write {variant_path(path)}")
                written += 1
    return written
