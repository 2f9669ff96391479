"""The noVNC modules the session page preloads: rfb.js and everything it imports, all served."""

from django.contrib.staticfiles import finders

from ide import viewer


def test_every_module_rfb_imports_is_listed_and_served():
    urls = viewer.modules()
    assert urls[0] == "/static/novnc/core/rfb.js"
    names = {url.removeprefix("/static/") for url in urls}
    # Direct imports, imports of imports (pako's inflate is imported by core/inflator.js), and ../ paths.
    assert {"novnc/core/websock.js", "novnc/core/inflator.js", "novnc/vendor/pako/lib/zlib/inflate.js"} <= names
    assert all(finders.find(name) for name in names)
    assert len(urls) == len(set(urls))


def test_normalize_resolves_relative_paths():
    from pathlib import PurePosixPath

    assert viewer.normalize(PurePosixPath("novnc/core/util/../decoders/./raw.js")) == "novnc/core/decoders/raw.js"
