"""Image files without Pillow: PNG written with zlib, and the format and size
of a PNG, JPEG, GIF or BMP file read from its first bytes."""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by channel count: grey, grey+alpha, RGB, RGBA.
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
# File extensions by format.
EXTENSIONS = {"png": "png", "jpeg": "jpg", "gif": "gif", "bmp": "bmp"}
# JPEG start-of-frame markers, which carry the size (0xC4, 0xC8 and 0xCC are not frames).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def encode_png(width: int, height: int, channels: int, pixels: bytes | bytearray) -> bytes:
    """A PNG of 8-bit ``pixels`` (rows top to bottom, channels interleaved).
    The same pixels always give the same bytes."""
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"{len(pixels)} bytes cannot be a {width}x{height} image "
                         f"of {channels} channel(s)")
    raw = bytearray((stride + 1) * height)  # each row: filter byte 0 ("none"), then pixels
    for y in range(height):
        start = y * (stride + 1) + 1
        raw[start:start + stride] = pixels[y * stride:(y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[channels], 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def sniff(data: bytes, name: str = "the data") -> tuple[str, int, int]:
    """(format, width, height) of a PNG, JPEG, GIF or BMP file's bytes."""
    try:
        if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return "png", width, height
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return "gif", width, height
        if data[:2] == b"BM":
            (header,) = struct.unpack("<I", data[14:18])
            if header == 12:  # the old OS/2 header: 16-bit sizes
                width, height = struct.unpack("<HH", data[18:22])
            else:
                width, height = struct.unpack("<ii", data[18:26])
            return "bmp", width, abs(height)  # a negative height: rows top to bottom
        if data[:3] == b"\xff\xd8\xff":
            return ("jpeg", *_jpeg_size(data))
    except struct.error:
        raise ValueError(f"{name} is cut short: not a whole image file") from None
    raise ValueError(f"{name} is not a PNG, JPEG, GIF or BMP image")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise struct.error
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        i += 2 + length
    raise struct.error
