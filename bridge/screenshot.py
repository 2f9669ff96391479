"""Screenshots: of the desktop (Xvfb's framebuffer file, read directly) or of a URL (headless Chromium)."""

import asyncio
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

XWD_HEADER = struct.Struct(">25I")


class ScreenshotError(Exception):
    pass


def png(width: int, height: int, rgb_rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row for row in rgb_rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def xwd_to_png(data: bytes) -> tuple[bytes, int, int]:
    """Xvfb's -fbdir file is an XWD image of the screen (32 bits per pixel, TrueColor)."""
    if len(data) < XWD_HEADER.size:
        raise ScreenshotError("the framebuffer file is too short")
    fields = XWD_HEADER.unpack_from(data)
    header_size, width, height, byte_order, bpp, bytes_per_line, ncolors = (
        fields[0], fields[4], fields[5], fields[7], fields[11], fields[12], fields[19])
    masks = fields[14:17]
    if bpp != 32 or masks != (0xFF0000, 0x00FF00, 0x0000FF):
        raise ScreenshotError(f"unsupported framebuffer format ({bpp} bits per pixel, masks {masks})")
    start = header_size + ncolors * 12
    if len(data) < start + bytes_per_line * height:
        raise ScreenshotError("the framebuffer file is truncated")
    # In memory a pixel is B, G, R, X (least significant byte first) or X, R, G, B.
    red, green, blue = (2, 1, 0) if byte_order == 0 else (1, 2, 3)
    rows = []
    for y in range(height):
        line = data[start + y * bytes_per_line: start + y * bytes_per_line + width * 4]
        row = bytearray(width * 3)
        row[0::3], row[1::3], row[2::3] = line[red::4], line[green::4], line[blue::4]
        rows.append(bytes(row))
    return png(width, height, rows), width, height


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ScreenshotError("not a PNG image")
    return struct.unpack(">II", data[16:24])


def desktop(framebuffer: Path) -> tuple[bytes, int, int]:
    try:
        return xwd_to_png(framebuffer.read_bytes())
    except FileNotFoundError:
        raise ScreenshotError("the desktop is not running") from None


async def page(url: str, chromium: str, width: int = 1280, height: int = 800, timeout: float = 45) -> bytes:
    """A headless Chromium of its own, so the shot does not disturb the desktop's browser."""
    with tempfile.TemporaryDirectory(prefix="shot-") as scratch:
        target = Path(scratch) / "shot.png"
        process = await asyncio.create_subprocess_exec(
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={scratch}/profile",
            f"--window-size={width},{height}", "--virtual-time-budget=3000", f"--screenshot={target}", url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            os.killpg(process.pid, 9)
            await process.wait()  # reaped, its pipe closed while the loop still runs
            raise ScreenshotError(f"Chromium did not finish the screenshot of {url} in {timeout:.0f} s") from None
        if not target.exists():
            tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise ScreenshotError(f"Chromium took no screenshot of {url}: {' | '.join(tail)}")
        return target.read_bytes()


def find_chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)
