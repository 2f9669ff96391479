"""noVNC's client library, served as static files under novnc/ (see STATICFILES_DIRS)."""

import re
from functools import lru_cache
from pathlib import PurePosixPath

from django.contrib.staticfiles import finders
from django.templatetags.static import static

ENTRY = "novnc/core/rfb.js"
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.{1,2}/[^'"]+)['"]""", re.MULTILINE)


@lru_cache(maxsize=1)
def modules() -> tuple[str, ...]:
    """Static URLs of rfb.js and every module it imports, directly or not. The page preloads them
    all at once: left to import(), the browser finds them one level at a time (~30 files, 8 levels)."""
    found: list[str] = []
    pending = [ENTRY]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = finders.find(name)
        if path is None:
            continue  # not installed (make setup): the page says the viewer could not load
        found.append(name)
        source = open(path, encoding="utf-8").read()
        folder = PurePosixPath(name).parent
        for relative in IMPORT.findall(source):
            pending.append(normalize(folder / relative))
    return tuple(static(name) for name in found)


def normalize(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)
