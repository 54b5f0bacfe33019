"""Animated GIF files without Pillow: GIF89a, a palette of its own for each
frame (at most 256 colours, made smaller by merging near colours when a frame
has more), LZW-compressed, looping forever.

The same frames always give the same bytes.
"""

from __future__ import annotations

import struct
from typing import Any

MAX_SIDE = 65535
MAX_DELAY = 65535  # hundredths of a second, a frame's longest
_MAX_CODES = 4095  # one short of GIF's 4096, as giflib: a clear code comes first
# Bits kept of (red, green, blue) when a frame has too many colours, tried in
# turn; the last gives at most 2**8 = 256 colours.
_LEVELS = ((7, 7, 7), (6, 6, 6), (5, 5, 5), (4, 4, 4), (4, 4, 3), (3, 4, 3), (3, 3, 3),
           (3, 3, 2))


def encode_gif(frames: Any, delay_cs: int) -> bytes:
    """A GIF of ``frames``, a uint8 numpy array of shape (time, height, width, 3),
    each shown for ``delay_cs`` hundredths of a second."""
    count, height, width, _ = frames.shape
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"a GIF is at most {MAX_SIDE} pixels wide and high, not "
                         f"{width}x{height}")
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", width, height, 0x70, 0, 0)  # no global palette
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for t in range(count):
        palette, indexes = quantise(frames[t])
        bits = max(1, (len(palette) // 3 - 1).bit_length())
        palette += bytes(3 * (1 << bits) - len(palette))
        # graphic control: leave the frame in place, this delay, no transparency
        out += b"\x21\xf9\x04\x04" + struct.pack("<H", delay_cs) + b"\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0x80 | (bits - 1))
        out += palette
        min_code = max(2, bits)
        out.append(min_code)
        data = lzw(indexes, min_code)
        for i in range(0, len(data), 255):
            block = data[i:i + 255]
            out.append(len(block))
            out += block
        out.append(0)
    out.append(0x3B)
    return bytes(out)


def quantise(frame: Any) -> tuple[bytearray, bytes]:
    """(palette of RGB triples, one palette index per pixel) of an (H, W, 3)
    uint8 frame: its own colours when it has at most 256, else the mean colour
    of each group of near colours."""
    import numpy as np

    rgb = frame.reshape(-1, 3).astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    if len(colours) > 256:
        for bits in _LEVELS:
            shifts = np.array([8 - b for b in bits], dtype=np.uint32)
            q = rgb >> shifts
            key = (q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2]
            groups, inverse = np.unique(key, return_inverse=True)
            if len(groups) <= 256:
                break
        n = len(groups)
        counts = np.bincount(inverse, minlength=n)
        mean = np.stack([np.bincount(inverse, weights=rgb[:, c], minlength=n)
                         for c in range(3)], axis=1)
        triples = np.floor(mean / counts[:, None] + 0.5).astype(np.uint8)
    else:
        triples = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255],
                           axis=1).astype(np.uint8)
    return bytearray(triples.tobytes()), inverse.astype(np.uint8).tobytes()


def lzw(indexes: bytes, min_code: int) -> bytes:
    """GIF's variable-length LZW of palette indexes, least significant bit first."""
    clear = 1 << min_code
    end = clear + 1
    out = bytearray()
    acc = nbits = 0

    def emit(code: int, size: int) -> None:
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += size
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8

    size = min_code + 1
    table: dict[int, int] = {}
    next_code = end + 1
    emit(clear, size)
    prefix = -1
    for px in indexes:
        if prefix < 0:
            prefix = px
            continue
        key = (prefix << 8) | px
        code = table.get(key)
        if code is not None:
            prefix = code
            continue
        emit(prefix, size)
        if next_code < _MAX_CODES:
            table[key] = next_code
            next_code += 1
            if next_code > (1 << size) and size < 12:
                size += 1
        else:
            emit(clear, size)
            table.clear()
            next_code = end + 1
            size = min_code + 1
        prefix = px
    if prefix >= 0:
        emit(prefix, size)
        # a decoder adds the entry the last code made, and widens its codes as
        # it would for the next one, before it reads the end code
        if next_code == (1 << size) and size < 12:
            size += 1
    emit(end, size)
    if nbits:
        out.append(acc & 255)
    return bytes(out)
