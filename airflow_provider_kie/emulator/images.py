"""The emulator's results: small real PNG images made with the standard library, and a short MP4 video
and MP3 sound (``media/``, made once with ffmpeg: see media/README.md) that browsers play."""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from pathlib import Path

MEDIA = Path(__file__).with_name("media")


def result_png(seed: str, size: int = 256, pad_to: int = 0) -> bytes:
    """A ``size`` x ``size`` RGB gradient whose colours derive from ``seed`` (so each task differs),
    padded with a private ancillary chunk (which viewers skip) to ``pad_to`` bytes if that is larger."""
    image = _gradient_png(seed, size)
    padding = pad_to - len(image) - 12  # a chunk's length, type and CRC take 12 bytes
    if padding <= 0:
        return image
    return b"".join((image[:-12], _padding_chunk(padding), image[-12:]))


@functools.lru_cache(maxsize=2)
def _padding_chunk(size: int) -> bytes:
    return _chunk(b"kiEp", bytes(size))  # the same for every result: made once, not per download


@functools.lru_cache(maxsize=4096)  # about 100 kB for 64 images: a result is served as often as asked
def _gradient_png(seed: str, size: int) -> bytes:
    digest = hashlib.sha256(seed.encode()).digest()
    r0, g0, b0, r1, g1, b1 = digest[:6]
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter type: none
        for x in range(size):
            t = (x + y) / (2 * (size - 1))
            rows += bytes(
                (int(r0 + (r1 - r0) * t) & 255, int(g0 + (g1 - g0) * t) & 255, int(b0 + (b1 - b0) * t) & 255)
            )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def result_file(kind: str, seed: str, pad_to: int = 0) -> tuple[bytes, str]:
    """A result of ``kind`` (image, video or audio) and its media type, padded to ``pad_to`` bytes in a
    way players skip (a PNG chunk, an MP4 ``free`` box, an MP3 with trailing zero bytes)."""
    if kind == "video":
        return _padded(_media("result.mp4"), pad_to, mp4=True), "video/mp4"
    if kind == "audio":
        return _padded(_media("result.mp3"), pad_to, mp4=False), "audio/mpeg"
    return result_png(seed, pad_to=pad_to), "image/png"


@functools.cache
def _media(name: str) -> bytes:
    return (MEDIA / name).read_bytes()


def _padded(content: bytes, pad_to: int, *, mp4: bool) -> bytes:
    padding = pad_to - len(content)
    if padding < 8:
        return content
    if mp4:
        return content + struct.pack(">I", padding) + b"free" + bytes(padding - 8)
    return content + bytes(padding)
