"""Draws the web app's icons (static/pwa/icon-192.png, icon-512.png): the top bar's colour, a prompt's chevron and
cursor in white, inside the middle 60% so a launcher's mask (a circle, a squircle) never cuts it. Run once; the
PNGs are committed. `python scripts/make_icons.py`"""

import struct
import zlib
from pathlib import Path

BACKGROUND = (0x1D, 0x23, 0x30)
INK = (0xFF, 0xFF, 0xFF)
ACCENT = (0x6F, 0x9B, 0xFF)


def inside(x: float, y: float) -> tuple[int, int, int]:
    """The colour at (x, y), both from 0 to 1."""
    # A chevron ">" from two thick strokes, and an underscore cursor beside it.
    def near_segment(ax, ay, bx, by, width):
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        px, py = ax + t * dx, ay + t * dy
        return (x - px) ** 2 + (y - py) ** 2 <= width ** 2

    if near_segment(0.30, 0.32, 0.48, 0.50, 0.055) or near_segment(0.48, 0.50, 0.30, 0.68, 0.055):
        return INK
    if 0.54 <= x <= 0.72 and 0.62 <= y <= 0.70:
        return ACCENT
    return BACKGROUND


def png(size: int) -> bytes:
    rows = b"".join(b"\x00" + bytes(c for px in range(size) for c in inside((px + .5) / size, (py + .5) / size))
                    for py in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    folder = Path(__file__).resolve().parent.parent / "static" / "pwa"
    folder.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (folder / f"icon-{size}.png").write_bytes(png(size))
