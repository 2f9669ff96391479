"""Loaded with `-p` (see pyproject.toml) before Django's settings are read: tests keep their
files (SQLite, embedded Redis socket, sandboxes) apart from those of `make run`."""

import os
from pathlib import Path

os.environ.setdefault("VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
