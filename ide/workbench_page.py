"""VS Code's workbench page, rendered by the control plane (while the sandbox's code-server starts, and after).

A fresh browser spends ~1.3 s downloading, parsing and running the workbench's 11 MB of script before
it first talks to its server. code-server answers its page only once it is up (0.8-2 s after a new
sandbox is), so that time used to come after it. When the sandbox reports (in its `ide` service
report) the same VS Code commit as the control plane's own copy of code-server, the proxy renders the
page that code-server would answer, from that copy's template (`workbench.html`), with the
configuration code-server builds for the flags the bridge starts it with (`webClientServer.ts`:
`_getWorkbenchHTML`, as patched by code-server). The page's requests to the server (its WebSocket
first) are held by the proxy until VS Code is ready (ide/proxy.py, ide/sockets.py). Once it is ready the
proxy still answers the page itself: its scripts and styles come from the path every session shares
(ide/vscode_static.py), so a browser that loaded VS Code for one session has them for the next.

Rendered from the control plane's own template and constants, never from markup a sandbox sent: from
the sandbox's report only its commit (which must be the local one) and two absolute paths (the folder
VS Code opens and its data folder, checked in sessions/workspace.py), escaped as code-server escapes
them. `tests/ide/test_workbench_page.py` compares the result with the real code-server's answer
(with code-server's own file path: the one difference).
"""

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, quote

from ide import vscode_static

TEMPLATE = "out/vs/code/browser/workbench/workbench.html"
# code-server's extension gallery when EXTENSIONS_GALLERY is unset (the bridge does not set it).
GALLERY = {
    "serviceUrl": "https://open-vsx.org/vscode/gallery",
    "itemUrl": "https://open-vsx.org/vscode/item",
    "resourceUrlTemplate": "https://open-vsx.org/vscode/asset/{publisher}/{name}/{version}/"
                           "Microsoft.VisualStudio.Code.WebResources/{path}",
    "controlUrl": "",
    "recommendationsUrl": "",
}
TELEMETRY_ENDPOINT = "https://v1.telemetry.coder.com/track"
# Inline scripts of code-server's other pages, which its Content-Security-Policy always allows.
FIXED_SCRIPT_HASHES = ("'sha256-2Q+j4hfT09+1+imS46J2YlkCtHWQt0/BE79PXjJ0ZJ8='",
                       "'sha256-/r7rqQ+yrxt57sxLuQ6AMYcy/lUpvAIzHjIJt/OeLWU='")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def answer(vscode: object, query_string: bytes, shared: bool = True) -> Answer | None:
    """What the sandbox's code-server would answer to GET / with this query, from its `vscode` facts
    ({"commit", "folder", "data"}, see bridge/protocol.py vscode_facts); None when the
    control plane cannot tell (another commit, no local install, a request of another kind).
    `shared`: the page loads VS Code's files from the path shared by every session (a browser keeps
    them across sessions, ide/vscode_static.py) instead of code-server's own, under the session's."""
    install = vscode_static.local_install()
    if install is None or not isinstance(vscode, dict) or f"-{vscode.get('commit')}/" not in install.prefix:
        return None
    folder, data = vscode.get("folder"), vscode.get("data")
    if not (isinstance(folder, str) and isinstance(data, str)):
        return None
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if not query:
        # code-server sends a bare "/" to the folder it was started on.
        location = "./?folder=" + quote(folder, safe="/")
        body = f"Found. Redirecting to {location}".encode()
        return Answer(302, [(b"location", location.encode()), (b"vary", b"Accept, Accept-Encoding"),
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())], body)
    if set(query) != {"folder"}:
        return None  # a workspace file, a connection token, ...: left to code-server
    rendered = render(install.root, install.prefix, data, vscode_static.shared_base(install) if shared else None)
    if rendered is None:
        return None
    page, policy = rendered
    return Answer(200, [(b"content-type", b"text/html"), (b"content-security-policy", policy),
                        (b"content-length", str(len(page)).encode()), (b"cache-control", b"no-store")], page)


@lru_cache(maxsize=8)
def _render(root: Path, prefix: str, data: str, files: str | None, template_mtime: int) -> tuple[bytes, bytes] | None:
    try:
        template = (root / TEMPLATE).read_text()
        product = json.loads((root / "product.json").read_text())
        version = json.loads((root.parent.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    static = prefix.strip("/")  # "stable-<commit>/static"
    callback = static.removesuffix("/static") + "/callback"
    configuration = {
        "remoteAuthority": "remote",
        "serverBasePath": ".",
        "webviewEndpoint": static + "/out/vs/workbench/contrib/webview/browser/pre",
        "userDataPath": data,
        "isEnabledFileDownloads": True,
        "isEnabledFileUploads": True,
        "isEnabledCoderGettingStarted": False,  # --disable-getting-started-override
        "developmentOptions": {"logLevel": 3},  # info
        "enableWorkspaceTrust": False,  # --disable-workspace-trust
        "productConfiguration": {
            "codeServerVersion": version,
            "rootEndpoint": ".",
            # no updateEndpoint: --disable-update-check; logoutEndpoint: --auth password
            "logoutEndpoint": "./logout",
            "proxyEndpointTemplate": "./proxy/{{port}}/",
            "serviceWorker": {"scope": "./", "path": "./_static/out/browser/serviceWorker.js"},
            "enableTelemetry": product.get("enableTelemetry", True),
            "telemetryEndpoint": product.get("telemetryEndpoint") or TELEMETRY_ENDPOINT,
            "embedderIdentifier": "server-distro",
            "extensionsGallery": product.get("extensionsGallery") or GALLERY,
            "linkProtectionTrustedDomains": list(product.get("linkProtectionTrustedDomains") or []),
        },
        "callbackRoute": callback,
    }
    values = {
        "WORKBENCH_WEB_CONFIGURATION": attribute_json(configuration),
        "WORKBENCH_AUTH_SESSION": "",
        "WORKBENCH_WEB_BASE_URL": files or static,
        "WORKBENCH_NLS_URL": "",  # English: no language pack
        "WORKBENCH_NLS_FALLBACK_URL": (files or static) + "/out/nls.messages.js",
        "BASE": ".",
        "VS_BASE": ".",
    }
    page = re.sub(r"\{\{([^}]+)\}\}", lambda m: values.get(m[1], "undefined"), template).encode()
    return page, content_security_policy(page).encode()


def render(root: Path, prefix: str, data: str, files: str | None = None) -> tuple[bytes, bytes] | None:
    """The page for a code-server whose --user-data-dir is `data`, and its Content-Security-Policy
    (None if the install is unreadable). `files`: where the page loads VS Code's own files from, when
    not from code-server's path (its webviews still come from there: their service worker's scope)."""
    try:
        mtime = (root / TEMPLATE).stat().st_mtime_ns
    except OSError:
        return None
    return _render(root, prefix, data, files, mtime)


def attribute_json(value: object) -> str:
    """As code-server puts JSON into a double-quoted attribute: JSON.stringify, then `"` as &quot;."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace('"', "&quot;")


def content_security_policy(page: bytes) -> str:
    """code-server's policy for the page: its inline scripts allowed by hash, nothing else inline."""
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
              for script in re.findall(r"<script>([\s\S]+?)</script>", page.decode(), re.IGNORECASE)]
    scripts = " ".join([*hashes, *FIXED_SCRIPT_HASHES])
    return " ".join([
        "default-src 'self';", "img-src 'self' https: data: blob:;", "media-src 'self';",
        f"script-src 'self' 'unsafe-eval'  blob: 'nonce-1nline-m4p' {scripts} ;",
        "child-src 'self';", "frame-src 'self' https://*.vscode-cdn.net data:;", "worker-src 'self' data: blob:;",
        "style-src 'self' 'unsafe-inline';", "connect-src 'self' ws: wss: https:;", "font-src 'self' blob:;",
        "manifest-src 'self';",
    ])
