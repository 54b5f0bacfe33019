"""The canonical fast path of manifest reading against the JSON parser.

Canonical manifests of plain entries are read by a regex, a piece at a
time; everything else goes through ``json.loads``. Whatever the fast path
accepts must read exactly as the parser would read it, and whatever it
declines must be judged by the parser alone. Manifests written by wbtool
from random entries (paths that need escapes, non-ASCII, characters of the
JSON syntax, huge sizes) and byte-level mutations of them are read both ways.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from wbtool import manifest
from wbtool.errors import StoreError
from wbtool.hashing import hash_bytes
from wbtool.manifest import Manifest, ManifestEntry

SEED = 20240611
CASES = 2500

# Characters a path may hold that JSON, the piece splitter or the path rules
# treat specially: escapes, separators of the canonical text, line breaks
# that JavaScript refuses, C1 controls, a BOM, astral characters.
_CHARS = [
    "a", "Z", "0", "-", "_", ".", " ", "é", "ß", "日", "😀", "\u2028", "\u2029", "\x7f",
    "\x85", "\ufeff", "}", "{", "]", ",", ":", "'", '"', "\t", "\n", "\x01", "\x1f",
    '},"', '":{', '","size":', "digest",
]
# Rarely: what the path rules refuse.
_HOSTILE = ["..", "", ".", "C:", "\\", "\x00", "/"]
# Characters that need no escape in JSON and no care in a path.
_UNESCAPED = [c for c in _CHARS if not set(c) & set('."\\:') and c >= " "]
# The last two have more digits than the fast path reads.
_SIZES = [0, 1, 9, 10, 4096, 123456, 2**31, 2**63 - 1, 10**19 - 1, 10**19, 10**40]

# Byte strings spliced into a manifest: escapes (\\u, \\/, surrogate pairs,
# lone surrogates escaped and raw), bad UTF-8, whitespace, JSON punctuation,
# number syntax.
_SPLICES = [
    b" ", b"\n", b"\t", b",", b"}", b"{", b"[", b'"', b"\\", b":", b"0", b"-", b".", b"e",
    b"\\u0061", b"\\/", b'\\"', b"\\\\", b"\\n", b"\\u2028", b"\\ud800", b"\\udc00",
    b"\\ud83d\\ude00", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80", b"\xc3", b"\xc3\xa9", b"\xff",
    b"\x00", b"\x1f", b"\x7f", b"\xef\xbb\xbf",
]
_NUMBERS = [b"-1", b"-0", b"01", b"00", b"1.0", b"1e3", b"0.5", b"true", b"null", b'"1"',
            b"9" * 19, b"9" * 20, b"1" * 5000, b"18446744073709551616", b"[]", b"{}"]
_SWAPS = [
    (b'"size":', b'"size": '), (b'"size":', b'"size" :'), (b'"digest":"', b'"digest": "'),
    (b'"size":', b'"SIZE":'), (b'"digest"', b'"d\\u0069gest"'), (b":{", b": {"),
    (b'},"', b'},,"'), (b'},"', b'} ,"'), (b'},"', b'}"'), (b"/", b"\\/"), (b"a", b"\\u0061"),
    (b'"hash":"xxh3-128"', b'"hash":"md5"'), (b'"version":1', b'"version":2'),
    (b'"version":1', b'"version":1.0'), (b'{"entries":', b'{"entries" :'),
]


def _path(rng: random.Random, hostile: float = 0.03, chars: list[str] = _CHARS) -> str:
    if rng.random() < 0.3:
        return f"d{rng.randrange(4)}/f{rng.randrange(50)}.bin"
    names = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < hostile:
            names.append(rng.choice(_HOSTILE))
        else:
            name = "".join(rng.choice(chars) for _ in range(rng.randint(1, 4)))
            names.append(name if name not in (".", "..") else name + "x")
    return "/".join(names)


def _entries(rng: random.Random) -> list[ManifestEntry]:
    """Entries of one of three kinds of manifest: plain entries under paths
    the fast path takes; plain entries under any paths; entries of every kind."""
    kind = rng.randrange(3)
    plain = kind < 2
    out = []
    for _ in range(rng.randint(0, 25)):
        path = _path(rng, 0.01, _UNESCAPED) if kind == 0 else _path(rng)
        digest = hash_bytes(rng.randbytes(8))
        size = rng.choice(_SIZES[:-2] if kind == 0 else _SIZES)
        which = 1.0 if plain else rng.random()
        if which < 0.1:
            out.append(ManifestEntry(path, 'etag"x', rng.choice([None, size]), ref="s3://b/k"))
        elif which < 0.2:
            out.append(ManifestEntry(path, digest, size, extra={"k": [1, "\u2028"]}))
        else:
            out.append(ManifestEntry(path, digest, size))
    return out


def _entry_texts(data: bytes) -> tuple[bytes, list[bytes], bytes] | None:
    """A canonical manifest as (head, the text of each entry, tail)."""
    head, tail = b'{"entries":{', b'},"hash":'
    end = data.rfind(tail)
    if not data.startswith(head) or end < len(head):
        return None
    body = data[len(head):end]
    texts = [b'"' + t + b"}" for t in body.split(b'},"')] if body else []
    if texts:
        texts[0], texts[-1] = texts[0][1:], texts[-1][:-1]
    return head, texts, data[end:]


def _mutate_entries(rng: random.Random, data: bytes) -> bytes:
    """Whole entries repeated (the same path again, maybe with another
    digest), reordered or dropped."""
    split = _entry_texts(data)
    if split is None or not split[1]:
        return data
    head, texts, tail = split
    op, k = rng.randrange(4), rng.randrange(len(texts))
    if op == 0:
        texts.insert(rng.randrange(len(texts) + 1), texts[k])
    elif op == 1:
        i = texts[k].find(b'"digest":"') + len(b'"digest":"')
        texts.insert(rng.randrange(len(texts) + 1),
                     texts[k][:i] + hash_bytes(texts[k]).encode() + texts[k][i + 32:])
    elif op == 2:
        rng.shuffle(texts)
    else:
        del texts[k]
    return head + b",".join(texts) + tail


def _mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data) + 1)
        op = rng.randrange(9)
        if op == 0:
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
        elif op == 1:
            data = data[:i] + data[i + 1:]
        elif op == 2:
            data = data[:i] + rng.choice(_SPLICES) + data[i:]
        elif op == 3:
            data = data[:i]
        elif op == 4:
            data = data + rng.choice(_SPLICES)
        elif op == 5:
            old, new = rng.choice(_SWAPS)
            data = data.replace(old, new, 1 if rng.random() < 0.5 else -1)
        elif op == 6:
            at = data.find(b'"size":', i)
            if at >= 0:
                at += len(b'"size":')
                end = at
                while data[end:end + 1].isdigit():
                    end += 1
                data = data[:at] + rng.choice(_NUMBERS) + data[end:]
        else:
            data = _mutate_entries(rng, data)
    return data


def _read(data: bytes) -> tuple[Any, ...]:
    """What reading ``data`` gives: every entry, in order, with its fields
    and the type of its size; or the error it is refused with."""
    try:
        m = Manifest.from_bytes(data)
    except StoreError as e:
        return ("refused", type(e).__name__, str(e))
    return ("read", [(key, e.path, e.digest, e.size, type(e.size), e.ref, e.extra)
                     for key, e in m.entries.items()])


def _read_without_fast_path(data: bytes) -> tuple[Any, ...]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest, "_canonical_plain_entries", lambda data: None)
        return _read(data)


def _cases(rng: random.Random) -> list[bytes]:
    cases = []
    while len(cases) < CASES:
        try:
            data = Manifest(_entries(rng)).to_bytes()
        except UnicodeEncodeError:  # a path wbtool cannot write
            continue
        cases.append(_mutate(rng, data) if rng.random() < 0.6 else data)
    return cases


@pytest.mark.parametrize("piece", [1, 97, 1 << 20])
def test_fast_path_reads_as_json_does(piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of one entry, of a few, and the default, which holds a whole
    small manifest."""
    monkeypatch.setattr(manifest, "_PIECE", piece)
    rng = random.Random(SEED + piece)
    taken = read = 0
    for data in _cases(rng):
        fast = _read(data)
        assert fast == _read_without_fast_path(data), data
        taken += manifest._canonical_plain_entries(data) is not None
        read += fast[0] == "read"
    # the cases must exercise both ways and both outcomes
    assert taken > CASES // 10 and read - taken > CASES // 20 and CASES - read > CASES // 5


def test_large_manifest_in_many_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """One long canonical manifest, then single mutations of it, read a few
    hundred bytes at a time."""
    monkeypatch.setattr(manifest, "_PIECE", 300)
    rng = random.Random(SEED)
    entries = [ManifestEntry(f"{_path(rng, 0, _UNESCAPED)}-{i}",
                             hash_bytes(i.to_bytes(2, "big")), rng.choice(_SIZES[:-2]))
               for i in range(3000)]
    data = Manifest(entries).to_bytes()
    assert manifest._canonical_plain_entries(data) is not None
    for k in range(150):
        case = data if k == 0 else _mutate(rng, data)
        assert _read(case) == _read_without_fast_path(case), k


def _doc(body: bytes) -> bytes:
    return b'{"entries":{' + body + b'},"hash":"xxh3-128","version":1}'


_D = hash_bytes(b"x").encode()


def _plain(path: bytes, size: bytes = b"1", digest: bytes = _D) -> bytes:
    return b'"' + path + b'":{"digest":"' + digest + b'","size":' + size + b"}"


@pytest.mark.parametrize("data", [
    _doc(b""),
    _doc(_plain("\u2028\u2029\x7f\x85\ufeff".encode())),
    _doc(_plain("日本/😀".encode())),
    _doc(_plain(b"\\ud83d\\ude00")),  # an escaped surrogate pair
    _doc(_plain(b"\xed\xa0\x80")),  # a lone surrogate, raw
    _doc(_plain(b"a\\ud800")),  # a lone surrogate, escaped
    _doc(_plain(b"a\\/b")),
    _doc(_plain(b'a\\"b')),
    _doc(_plain(b"a\\\\b")),
    _doc(_plain(b"a\\u0062")),
    _doc(_plain(b"a\x01b")),
    _doc(_plain(b"a\\u0001b")),
    _doc(_plain(b'a},"b')),
    _doc(_plain(b"a") + b"," + _plain(b"a", b"2")),  # the same path twice
    _doc(_plain(b"a") + b"," + _plain(b"b") + b"," + _plain(b"a", b"2")),
    _doc(_plain(b"a", b"9" * 19)),
    _doc(_plain(b"a", b"9" * 20)),
    _doc(_plain(b"a", b"1" * 5000)),
    _doc(_plain(b"a", b"-0")),
    _doc(_plain(b"a", b"-1")),
    _doc(_plain(b"a", b"01")),
    _doc(_plain(b"a", b"1.0")),
    _doc(_plain(b"a", b"1e3")),
    _doc(_plain(b"a", digest=_D.upper())),
    _doc(_plain(b"a", digest=_D[:-1])),
    _doc(b'"a":{"size":1,"digest":"' + _D + b'"}'),
    _doc(b'"a" : {"digest":"' + _D + b'","size":1}'),
    _doc(_plain(b"a") + b","),
    _doc(b"," + _plain(b"a")),
    _doc(_plain(b"a") + b",," + _plain(b"b")),
    _doc(_plain(b"a")) + b" ",
    _doc(_plain(b"a")) + b"}",
    _doc(_plain(b"a"))[:-1],
    b"\xef\xbb\xbf" + _doc(_plain(b"a")),
], ids=lambda data: repr(data[12:60]))
def test_edge_cases_read_as_json_does(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "_PIECE", 1)
    assert _read(data) == _read_without_fast_path(data)
