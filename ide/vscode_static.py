"""VS Code's static files, answered by the control plane from its own copy of the pinned code-server.

The workbench page loads /w/<id>/ide/<quality>-<commit>/static/<path>. code-server's server answers
those from its lib/vscode/<path> (`_handleStatic` in VS Code's src/vs/server/node/webClientServer.ts:
APP_ROOT, a Content-Type by extension, `Cache-Control: public, max-age=31536000`) and gzips each answer
on the fly (~0.5 s of CPU for the 11 MB workbench.js). When the control plane has the same commit
installed (sandboxes/tools.py), the files are the same, so the proxy answers them here: precompressed
(proxy_core/precompressed.py), with a Content-Length, and even before the sandbox's code-server is up.
Another commit (a sandbox image with another code-server) or no install: proxied as everything else.

The workbench pages the control plane renders (ide/workbench_page.py) load the same files from one path for
every session, SHARED_ROOT/<quality>-<commit>/static/<path>, so a browser keeps them across sessions: a
person's second session loads VS Code from the browser's cache (and V8's cache of the compiled script).
Any signed-in user may fetch them: they are the pinned code-server's own files, the same for everyone.
"""

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from ide.paths import ServicePath
from proxy_core import precompressed
from proxy_core.headers import header
from sandboxes.tools import vscode_dir

CHUNK = 1024 * 1024
SHARED_ROOT = "/w/vscode"  # not a session's path: those are /w/<digits>/
# The URL holds the commit, so the file behind it never changes.
CACHE_CONTROL = b"public, max-age=31536000, immutable"

# code-server's types: its textMimeType (exact extension), then VS Code's getMediaMime (any case),
# else text/plain (src/vs/base/common/mime.ts).
TEXT_TYPES = {".html": "text/html", ".js": "text/javascript", ".json": "application/json", ".css": "text/css",
              ".svg": "image/svg+xml"}
MEDIA_TYPES = {
    ".aac": "audio/x-aac", ".avi": "video/x-msvideo", ".bmp": "image/bmp", ".flv": "video/x-flv", ".gif": "image/gif",
    ".ico": "image/x-icon", ".jpe": "image/jpg", ".jpeg": "image/jpg", ".jpg": "image/jpg", ".m1v": "video/mpeg",
    ".m2a": "audio/mpeg", ".m2v": "video/mpeg", ".m3a": "audio/mpeg", ".mid": "audio/midi", ".midi": "audio/midi",
    ".mk3d": "video/x-matroska", ".mks": "video/x-matroska", ".mkv": "video/x-matroska", ".mov": "video/quicktime",
    ".movie": "video/x-sgi-movie", ".mp2": "audio/mpeg", ".mp2a": "audio/mpeg", ".mp3": "audio/mpeg",
    ".mp4": "video/mp4", ".mp4a": "audio/mp4", ".mp4v": "video/mp4", ".mpe": "video/mpeg", ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg", ".mpg4": "video/mp4", ".mpga": "audio/mpeg", ".oga": "audio/ogg", ".ogg": "audio/ogg",
    ".opus": "audio/opus", ".ogv": "video/ogg", ".png": "image/png", ".psd": "image/vnd.adobe.photoshop",
    ".qt": "video/quicktime", ".spx": "audio/ogg", ".svg": "image/svg+xml", ".tga": "image/x-tga",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".wav": "audio/x-wav", ".webm": "video/webm", ".webp": "image/webp",
    ".wma": "audio/x-ms-wma", ".wmv": "video/x-ms-wmv", ".woff": "application/font-woff",
}


@dataclass(frozen=True)
class Install:
    root: Path  # lib/vscode, resolved
    prefix: str  # "/stable-<commit>/static/", as the sandbox's code-server sees the path


@dataclass(frozen=True)
class Found:
    status: int  # 200 (file is set), 400 or 404
    file: Path | None = None


_cached: tuple[tuple[int, int], Install | None] = ((0, 0), None)  # product.json's (inode, mtime) and what it said


def local_install() -> Install | None:
    """The installed VS Code's root and static prefix; read again when product.json changes (a reinstall)."""
    global _cached
    root = vscode_dir()
    try:
        stat = (root / "product.json").stat()
    except OSError:
        return None
    key = (stat.st_ino, stat.st_mtime_ns)
    if _cached[0] != key:
        _cached = (key, read_install(root))
    return _cached[1]


def read_install(root: Path) -> Install | None:
    try:
        product = json.loads((root / "product.json").read_text())
        commit, quality = product.get("commit"), product.get("quality")
        if not (isinstance(commit, str) and isinstance(quality, str) and commit and quality):
            return None
        return Install(root.resolve(), f"/{quality}-{commit}/static/")
    except (OSError, ValueError, AttributeError):
        return None


def shared_base(install: Install) -> str:
    """Where every session's workbench page loads the install's files: "/w/vscode/<quality>-<commit>/static"."""
    return SHARED_ROOT + install.prefix.rstrip("/")


def lookup_shared(path: str) -> Found:
    """How the local install answers `path` (raw, percent-encoded), a path under SHARED_ROOT."""
    install = local_install()
    base = shared_base(install) + "/" if install else None
    if base is None or not path.startswith(base):
        return Found(404)  # no install, or another commit's URL
    return find(install.root, path.removeprefix(base))


def lookup(path: ServicePath) -> Found | None:
    """How the local install answers `path`; None when it is not one of its static URLs."""
    if path.service != "ide":
        return None
    install = local_install()
    if install is None or not path.rest.startswith(install.prefix):
        return None
    return find(install.root, path.rest.removeprefix(install.prefix))


def find(root: Path, encoded: str) -> Found:
    """The file under `root` a percent-encoded relative path names. Nothing outside `root` is ever
    answered: no "..", no NUL, and a symlink must resolve inside `root` too."""
    relative = unquote(encoded)  # as code-server's decodeURIComponent: "%20" is a space
    if "\0" in relative or ".." in relative.split("/"):
        return Found(400)
    try:
        file = (root / relative.lstrip("/")).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return Found(404)
    if not file.is_relative_to(root) or not file.is_file():
        return Found(404)
    return Found(200, file)


def content_type(file: Path) -> str:
    return TEXT_TYPES.get(file.suffix) or MEDIA_TYPES.get(file.suffix.lower()) or "text/plain"


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (a coding with q=0 is refused, RFC 9110 §12.5.3)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


async def serve(scope: dict, send, file: Path) -> None:
    """`file` to the browser: its .gz when the browser accepts gzip, else as it is."""
    body, encoding = file, None
    if accepts_gzip(header(scope.get("headers", []), b"accept-encoding")) and \
            precompressed.compressible(file, file.stat().st_size):
        variant = await asyncio.to_thread(precompressed.ensure_variant, file)  # written once if missing
        if variant is not None:
            body, encoding = variant, b"gzip"
    stream = await asyncio.to_thread(open, body, "rb")
    try:
        headers = [(b"content-type", content_type(file).encode()),
                   (b"content-length", str(os.fstat(stream.fileno()).st_size).encode()),
                   (b"cache-control", CACHE_CONTROL), (b"vary", b"Accept-Encoding")]
        if encoding:
            headers.append((b"content-encoding", encoding))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        while chunk := await asyncio.to_thread(stream.read, CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        stream.close()
