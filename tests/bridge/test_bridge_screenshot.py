"""Screenshots the bridge takes: Xvfb's framebuffer file turned into a PNG, and a page in headless Chromium."""

import asyncio
import shutil
import struct
import subprocess
import time
import zlib

import pytest

from bridge import screenshot
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox


def xwd(width: int, height: int, pixels: list[tuple[int, int, int]], byte_order: int = 0, bpp: int = 32,
        ncolors: int = 2) -> bytes:
    """An XWD file as Xvfb writes it (ZPixmap, TrueColor), with a colormap and padded lines."""
    bytes_per_line = width * 4 + 8  # padding the converter must skip
    header = [100 + 4, 7, 2, 24, width, height, 0, byte_order, 32, byte_order, 32, bpp, bytes_per_line, 4,
              0xFF0000, 0x00FF00, 0x0000FF, 8, 256, ncolors, width, height, 0, 0, 0]
    lines = b""
    for y in range(height):
        line = b""
        for r, g, b in pixels[y * width:(y + 1) * width]:
            line += bytes((b, g, r, 0)) if byte_order == 0 else bytes((0, r, g, b))
        lines += line + b"\xee" * 8
    return struct.pack(">25I", *header) + b"win\0" + b"\0" * 12 * ncolors + lines


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    width, height = screenshot.png_size(png)
    data, offset = b"", 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        if kind == b"IDAT":
            data += png[offset + 8:offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(data)
    stride = width * 3 + 1
    return width, height, [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]


@pytest.mark.parametrize("byte_order", [0, 1])
def test_a_framebuffer_becomes_a_png_with_the_same_pixels(byte_order):
    pixels = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30), (255, 255, 255), (0, 0, 0)]
    png, width, height = screenshot.xwd_to_png(xwd(3, 2, pixels, byte_order))
    assert (width, height) == (3, 2)
    _, _, rows = decode(png)
    assert rows == [bytes([*pixels[0], *pixels[1], *pixels[2]]), bytes([*pixels[3], *pixels[4], *pixels[5]])]


def test_a_framebuffer_it_cannot_read_is_refused_with_the_reason():
    with pytest.raises(screenshot.ScreenshotError, match="16 bits per pixel"):
        screenshot.xwd_to_png(xwd(2, 2, [(0, 0, 0)] * 4, bpp=16))
    with pytest.raises(screenshot.ScreenshotError, match="truncated"):
        screenshot.xwd_to_png(xwd(2, 2, [(0, 0, 0)] * 4)[:-20])
    with pytest.raises(screenshot.ScreenshotError, match="not running"):
        screenshot.desktop(__import__("pathlib").Path("/nonexistent/Xvfb_screen0"))


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
def test_the_desktop_of_a_real_xvfb(tmp_path):
    display = 90 + int(time.time()) % 50
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "640x480x24", "-nolisten", "tcp",
                             "-fbdir", str(tmp_path)], stderr=subprocess.DEVNULL)
    try:
        framebuffer = tmp_path / "Xvfb_screen0"
        eventually(framebuffer.exists, what="Xvfb's framebuffer file")
        png, width, height = screenshot.desktop(framebuffer)
        assert (width, height) == (640, 480)
        _, _, rows = decode(png)
        assert len(rows) == 480 and all(len(row) == 640 * 3 for row in rows)
    finally:
        xvfb.terminate()
        xvfb.wait()


@pytest.mark.skipif(screenshot.find_chromium() is None, reason="needs Chromium")
def test_a_page_in_headless_chromium():
    def shot(color: str) -> bytes:
        page = f"data:text/html,<body style='background:{color}'><h1>Shop</h1></body>"
        return asyncio.run(screenshot.page(page, screenshot.find_chromium(), width=800, height=600))

    blue, red = shot("rgb(0,128,255)"), shot("rgb(255,0,0)")
    assert screenshot.png_size(blue) == screenshot.png_size(red) == (800, 600)
    assert blue != red  # the page's content, not a blank window


def test_an_unreachable_page_is_reported():
    if screenshot.find_chromium() is None:
        pytest.skip("needs Chromium")
    with pytest.raises(screenshot.ScreenshotError):
        asyncio.run(screenshot.page("http://127.0.0.1:9/", screenshot.find_chromium(), timeout=0.01))
