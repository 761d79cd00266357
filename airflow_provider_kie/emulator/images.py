"""Small real PNG images, made with the standard library only, for the emulator's results."""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib


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
