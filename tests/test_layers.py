"""The dependency rules (docs/architecture.md, "Apps and layers") hold, and import-linter's contracts would catch
a change that broke them: a back edge, an import cycle, the control plane reaching into the bridge."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Every package the contracts name, read from pyproject.toml: a copy missing one would import the real one instead.
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the project's packages and its pyproject.toml, to break."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_project_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("files", "broken"), [
    # a lower layer importing a higher one
    ({"sandboxes/probe.py": "from sessions.models import Session\n"}, "Layers"),
    ({"proxy_core/probe.py": "import sandboxes.models\n"}, "Layers"),
    # one feature app importing another
    ({"model_proxy/probe.py": "import ide.paths\n"}, "Layers"),
    # the same, hidden in a function
    ({"sessions/probe.py": "def later():\n    from ide import views\n"}, "Layers"),
    # the control plane reaching into the bridge past its protocol
    ({"sessions/probe.py": "from bridge.agent import Agent\n"}, "The control plane imports only bridge.protocol"),
    # the bridge importing Django
    ({"bridge/probe.py": "from django.conf import settings\n"}, "The bridge runs in the sandbox"),
    # two modules of a package importing each other (one of them late, in a function)
    ({"sessions/probe_a.py": "from sessions import probe_b\n",
      "sessions/probe_b.py": "def later():\n    from sessions import probe_a\n"}, "No import cycles"),
])
def test_a_broken_rule_fails_the_lint(tree, files, broken):
    for path, source in files.items():
        (tree / path).write_text(source)
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout.split("Broken contracts", 1)[-1], result.stdout


def test_no_module_of_the_project_imports_itself_back_through_others():
    """No import cycle anywhere in the project's own code, late imports in functions included."""
    import grimp

    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported))
    assert cycles == []
