"""Install what the bridge needs inside a sandbox into the tools folder (idempotent).

Layout (the local backend binds this folder read-only at /opt/inspect in every sandbox):
  opencode/          npm prefix with opencode-ai; the binary is opencode/node_modules/.bin/opencode
  opencode-config/   package.json, package-lock.json and node_modules with @opencode-ai/plugin, which the
                     bridge links into OpenCode's config folder so OpenCode does not install it at start-up
  python/            `pip install --target` of websockets, for the bridge
  code-server/       npm prefix with code-server (VS Code in the browser); the binary is
                     code-server/node_modules/.bin/code-server. Installed without its postinstall script,
                     which downloads ripgrep from GitHub: the steps are done here, with Debian's rg instead
  bridge/            an empty mount point for the bridge's own source (bridge/)
Then VS Code's browser files (code-server/.../lib/vscode/out) get a .gz beside each compressible one,
which the workspace proxy serves (ide/vscode_static.py); files whose .gz is fresh are skipped.
Each component keeps a stamp with what it was installed from; a component whose stamp matches is
left alone, so a second run takes well under a second.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bridge.protocol import (
    CODE_SERVER_BIN,
    CODE_SERVER_VERSION,
    OPENCODE_BIN,
    OPENCODE_PLUGIN_PACKAGE,
    OPENCODE_VERSION,
    WEBSOCKETS_VERSION,
)
from proxy_core import precompressed
from sandboxes.tools import tools_dir, vscode_dir

STAMP = ".inspect-tools.json"


def npm_package(packages: dict[str, str]) -> dict:
    return {"name": "inspect-sandbox-tools", "private": True, "dependencies": packages}


def components() -> dict[str, dict]:
    """What each component is installed from: its stamp."""
    return {
        "opencode": {"npm": {"opencode-ai": OPENCODE_VERSION}},
        "opencode-config": {"npm": {OPENCODE_PLUGIN_PACKAGE: OPENCODE_VERSION}},
        "python": {"pip": [f"websockets=={WEBSOCKETS_VERSION}"]},
        "code-server": {"npm": {"code-server": CODE_SERVER_VERSION}, "recipe": "offline-ripgrep-1"},
    }


def is_current(folder: Path, spec: dict) -> bool:
    try:
        return json.loads((folder / STAMP).read_text()) == spec
    except (OSError, ValueError):
        return False


class Command(BaseCommand):
    help = "Install OpenCode, its plugin package and the bridge's Python packages into the sandbox tools folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dir", help="tools folder (default: settings.SANDBOX_TOOLS_DIR or var/sandbox-tools)")
        parser.add_argument("--force", action="store_true", help="reinstall every component")

    def handle(self, *args, **options) -> None:
        root = Path(options["dir"]) if options["dir"] else tools_dir()
        os.umask(0o022)  # the sandbox uid must be able to read everything
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        (root / "bridge").mkdir(mode=0o755, exist_ok=True)
        started = time.monotonic()
        for name, spec in components().items():
            target = root / name
            if not options["force"] and is_current(target, spec):
                self.stdout.write(f"sandbox tools: {name} is up to date")
                continue
            self.stdout.write(f"sandbox tools: installing {name} ({self.describe(spec)}) ...")
            step = time.monotonic()
            self.install(root, name, spec)
            self.stdout.write(f"sandbox tools: {name} installed in {time.monotonic() - step:.1f} s")
        step = time.monotonic()
        written = precompressed.precompress(vscode_dir(root) / "out")
        self.stdout.write(f"sandbox tools: VS Code's browser files precompressed ({written} written, "
                          f"{time.monotonic() - step:.1f} s)")
        self.stdout.write(f"sandbox tools ready in {root} ({time.monotonic() - started:.1f} s)")

    @staticmethod
    def describe(spec: dict) -> str:
        if "npm" in spec:
            return ", ".join(f"{k}@{v}" for k, v in spec["npm"].items())
        return ", ".join(spec["pip"])

    def install(self, root: Path, name: str, spec: dict) -> None:
        staging = root / f".staging-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            if name == "code-server":
                self.install_code_server(staging, spec)
            elif "npm" in spec:
                (staging / "package.json").write_text(json.dumps(npm_package(spec["npm"]), indent=2) + "\n")
                self.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], staging)
            else:
                self.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
                          "--disable-pip-version-check", "--target", str(staging), *spec["pip"]], staging)
            if name == "opencode":
                self.check_opencode(staging)
            (staging / STAMP).write_text(json.dumps(spec))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        target, old = root / name, root / f".old-{name}"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)

    def install_code_server(self, staging: Path, spec: dict) -> None:
        """What code-server's postinstall does, without its ripgrep download (GitHub is not a package
        registry, and air-gapped installs must work): Debian's rg is linked where VS Code looks for it."""
        ripgrep = shutil.which("rg")
        if ripgrep is None:
            raise CommandError("ripgrep (rg) is not installed (run `make system-deps`)")
        # npm_config_yes: node-pty's postinstall runs `npx node-gyp`, which asks before fetching it.
        npm = ["env", "npm_config_yes=true", "npm", "--no-audit", "--no-fund", "--loglevel=error"]
        (staging / "package.json").write_text(json.dumps(npm_package(spec["npm"]), indent=2) + "\n")
        self.run([*npm, "install", "--ignore-scripts"], staging)
        self.run([*npm, "rebuild", "argon2"], staging)  # its only native dependency of its own
        vscode = staging / "node_modules" / "code-server" / "lib" / "vscode"
        self.run([*npm, "install", "--omit=dev", "--ignore-scripts"], vscode)
        rg_bin = vscode / "node_modules" / "@vscode" / "ripgrep" / "bin"
        rg_bin.mkdir(parents=True, exist_ok=True)
        (rg_bin / "rg").symlink_to(ripgrep)
        # With bin/ present, @vscode/ripgrep's own postinstall skips its download; the others build.
        self.run([*npm, "rebuild"], vscode)
        (vscode / "node_modules.asar").symlink_to("node_modules")
        (vscode / "bin" / "remote-cli" / "code-server").symlink_to("code-linux.sh")
        (vscode / "bin" / "helpers" / "browser.sh").symlink_to("browser-linux.sh")
        self.run([*npm, "install", "--omit=dev"], vscode / "extensions")
        binary = staging / CODE_SERVER_BIN.relative_to("code-server")
        result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "HOME": str(staging)})
        if f"\n{CODE_SERVER_VERSION} " not in f"\n{result.stdout}":
            raise CommandError(f"code-server --version said {result.stdout.strip()!r}{result.stderr}")
        shutil.rmtree(staging / ".config", ignore_errors=True)  # written by --version

    def run(self, command: list[str], cwd: Path) -> None:
        if shutil.which(command[0]) is None and not Path(command[0]).exists():
            raise CommandError(f"{command[0]} is not installed (run `make system-deps`)")
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            raise CommandError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def check_opencode(self, staging: Path) -> None:
        binary = staging / OPENCODE_BIN.relative_to("opencode")
        with tempfile.TemporaryDirectory() as home:  # it creates empty ~/.cache, ~/.config, ... there
            env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
            result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60,
                                    env={**env, "HOME": home})
        if result.stdout.strip() != OPENCODE_VERSION:
            raise CommandError(f"{binary} --version said {result.stdout.strip()!r}{result.stderr}")
