"""Gzip variants on disk beside static files: written once, again when stale, never for what gains nothing."""

import gzip
import os
from pathlib import Path

from proxy_core import precompressed


def test_precompress_writes_a_variant_per_compressible_file_once(tmp_path):
    script = b"function f() { return 42; }\n" * 200
    (tmp_path / "deep/er").mkdir(parents=True)
    (tmp_path / "deep/er/app.js").write_bytes(script)
    (tmp_path / "style.CSS").write_bytes(b"body { margin: 0 }\n" * 100)
    (tmp_path / "tiny.js").write_bytes(b"let a = 1;\n")  # under MIN_SIZE
    (tmp_path / "image.png").write_bytes(os.urandom(4096))  # compressed already
    (tmp_path / "app.js.map").write_bytes(b'{"mappings": ""}' * 200)  # left to its first request
    (tmp_path / "link.js").symlink_to(tmp_path / "deep/er/app.js")

    assert precompressed.precompress(tmp_path) == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gz")) == [
        "deep/er/app.js.gz", "style.CSS.gz"]
    variant = tmp_path / "deep/er/app.js.gz"
    assert gzip.decompress(variant.read_bytes()) == script
    assert oct(variant.stat().st_mode & 0o777) == "0o644"
    assert precompressed.precompress(tmp_path) == 0  # fresh: left alone
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_stale_variant_is_written_again_with_the_same_bytes_for_the_same_file(tmp_path):
    source = tmp_path / "app.js"
    source.write_bytes(b"console.log('one');\n" * 100)
    first = precompressed.ensure_variant(source)
    assert first == tmp_path / "app.js.gz"
    before = first.read_bytes()
    source.write_bytes(b"console.log('two');\n" * 100)
    later = first.stat().st_mtime_ns + 1_000_000_000
    os.utime(source, ns=(later, later))  # newer than its variant
    assert precompressed.fresh_variant(source) is None
    assert precompressed.precompress(tmp_path) == 1
    assert gzip.decompress(first.read_bytes()) == source.read_bytes()
    source.write_bytes(b"console.log('one');\n" * 100)
    first.unlink()
    assert precompressed.ensure_variant(source).read_bytes() == before  # no name or time in the header


def test_no_variant_where_none_can_be_written(tmp_path):
    # /proc takes no new files, even from root: the file is then served as it is.
    assert precompressed.ensure_variant(Path("/proc/version")) is None
    assert precompressed.ensure_variant(tmp_path / "gone" / "app.js") is None
