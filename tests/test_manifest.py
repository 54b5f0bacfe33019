from __future__ import annotations

import json

import pytest

from wbtool.errors import StoreError
from wbtool.hashing import hash_bytes
from wbtool.manifest import Manifest, ManifestEntry

D1 = hash_bytes(b"one")
D2 = hash_bytes(b"two")


def test_canonical_bytes_match_json_dumps() -> None:
    m = Manifest([
        ManifestEntry("b/é.txt", D2, 3, extra={"z": 1, "a": [1, 2]}),
        ManifestEntry("a.txt", D1, 3),
        ManifestEntry("ref", D1, None, ref="file:///tmp/x"),
    ])
    expected = json.dumps(m.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    assert m.to_bytes() == expected


@pytest.mark.parametrize("odd", [
    ManifestEntry('quote"d', D1, 1),
    ManifestEntry("back\\slash", D1, 1),
    ManifestEntry("ctl\x01\x7f\u2028", D1, 1),
    ManifestEntry("no-size", D1, None),
    ManifestEntry("empty-extra", D1, 1, extra={}),
    ManifestEntry("ref", "etag\"x", 5, ref="s3://b/k"),
])
def test_canonical_bytes_across_chunks(odd: ManifestEntry) -> None:
    # Entries are written a chunk at a time, plain chunks by a fast path: one
    # entry needing escapes or extra fields among thousands of plain ones
    # (in the first or the second chunk, by its path) must still give exactly json.dumps' bytes.
    plain = [ManifestEntry(f"d{i // 100:03d}/é{i:05d}.bin", hash_bytes(str(i).encode()), i)
             for i in range(5000)]
    m = Manifest([*plain, odd])
    expected = json.dumps(m.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    digest, data = m.serialize()
    assert data == expected
    assert digest == m.digest() == hash_bytes(json.dumps(
        m.to_dict()["entries"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode())


def test_digest_is_order_independent_and_content_sensitive() -> None:
    a = Manifest([ManifestEntry("a", D1, 3), ManifestEntry("b", D2, 3)])
    b = Manifest([ManifestEntry("b", D2, 3), ManifestEntry("a", D1, 3)])
    c = Manifest([ManifestEntry("a", D2, 3), ManifestEntry("b", D1, 3)])
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_round_trip() -> None:
    m = Manifest([ManifestEntry("x/y", D1, 3), ManifestEntry("r", "etag", 5, ref="s3://b/k")])
    back = Manifest.from_bytes(m.to_bytes())
    assert back.to_bytes() == m.to_bytes()


@pytest.mark.parametrize(
    "entries",
    [
        {"../evil": {"digest": D1, "size": 1}},
        {"/etc/passwd": {"digest": D1, "size": 1}},
        {"a/../../b": {"digest": D1, "size": 1}},
        {"a//b": {"digest": D1, "size": 1}},
        {"ok": {"digest": "not-a-digest", "size": 1}},
        {"ok": {"digest": D1, "size": -1}},
        {"ok": {"digest": D1}},
        {"ok": "string"},
        {"a/.": {"digest": D1, "size": 1}},
        {"./a": {"digest": D1, "size": 1}},
        {"ok": {"digest": D1.upper(), "size": 1}},
        {"ok": {"digest": D1, "size": True}},
        {"ok": {"digest": D1, "size": 1.0}},
        {"a\\b": {"digest": D1, "size": 1}},
        {"C:/x": {"digest": D1, "size": 1}},
    ],
)
def test_hostile_manifests_refused(entries: dict) -> None:
    doc = json.dumps({"version": 1, "hash": "xxh3-128", "entries": entries}).encode()
    with pytest.raises(StoreError):
        Manifest.from_bytes(doc)


@pytest.mark.parametrize("bad", [
    ("../evil", {"digest": D1, "size": 1}),
    ("ok", {"digest": D1, "size": -1}),
    ("ok", {"digest": D1, "size": True}),
    ("ok", {"digest": D1[:-1] + "g", "size": 1}),
    ("C:/x", {"digest": D1, "size": 1}),
])
def test_one_hostile_entry_among_many_refused(bad: tuple[str, dict]) -> None:
    """Large manifests are checked column by column; one bad entry anywhere
    still sinks the whole manifest."""
    entries = {f"d/f{i:04}": {"digest": D1, "size": i} for i in range(2000)}
    entries[bad[0]] = bad[1]
    doc = json.dumps({"version": 1, "hash": "xxh3-128", "entries": entries}).encode()
    with pytest.raises(StoreError):
        Manifest.from_bytes(doc)


def test_unknown_versions_refused() -> None:
    for doc in ({"version": 2, "hash": "xxh3-128", "entries": {}},
                {"version": 1, "hash": "md5", "entries": {}}):
        with pytest.raises(StoreError, match="unsupported"):
            Manifest.from_bytes(json.dumps(doc).encode())
