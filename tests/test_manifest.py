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


def _canonical_doc(entries: dict) -> bytes:
    return json.dumps({"version": 1, "hash": "xxh3-128", "entries": entries}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Canonical manifests are read a piece at a time: pieces of a few
    entries, so that every test crosses many piece boundaries."""
    from wbtool import manifest

    monkeypatch.setattr(manifest, "_PIECE", 200)


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("odd", [
    None,
    ManifestEntry('quote"d', D1, 1),
    ManifestEntry("ref", "etag", 5, ref="s3://b/k"),
    ManifestEntry("zz-extra", D1, 1, extra={"k": [1]}),
])
def test_canonical_manifest_read_in_pieces(odd: ManifestEntry | None) -> None:
    plain = [ManifestEntry(f"d{i % 7}/é{i:04d}.bin", hash_bytes(str(i).encode()),
                           (0, 1024, 10**15, i)[i % 4]) for i in range(700)]
    m = Manifest(plain + ([odd] if odd else []))
    back = Manifest.from_bytes(m.to_bytes())
    assert list(back.entries) == sorted(m.entries)
    for e in back:
        assert (e.digest, e.size, e.ref, e.extra) == (m.entries[e.path].digest,
                                                     m.entries[e.path].size,
                                                     m.entries[e.path].ref,
                                                     m.entries[e.path].extra)
        assert type(e.size) is int
    assert back.to_bytes() == m.to_bytes()


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("where", [0, 350, 699])
@pytest.mark.parametrize("bad", [
    ("../evil", {"digest": D1, "size": 1}),
    ("a/./b", {"digest": D1, "size": 1}),
    ("ok", {"digest": D1, "size": -1}),
    ("ok", {"digest": D1.upper(), "size": 1}),
    ("ok", {"digest": D1, "size": 10**5000}),
    ("C:/x", {"digest": D1, "size": 1}),
])
def test_hostile_entry_in_a_canonical_manifest_refused(bad: tuple[str, dict], where: int) -> None:
    entries = {f"d/f{i:04}": {"digest": D1, "size": i} for i in range(700)}
    items = list(entries.items())
    items.insert(where, bad)
    try:
        doc = _canonical_doc(dict(items))
    except ValueError:  # an int too long for json.dumps: written by hand
        doc = _canonical_doc(entries).replace(b'"size":7}', b'"size":' + b"9" * 5000 + b"}", 1)
    with pytest.raises(StoreError):
        Manifest.from_bytes(doc)


@pytest.mark.parametrize("doc", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"entries":{"a":{"digest":"' + D1.encode() + b'","extra":' + b'{"k":' * 100_000
    + b"1" + b"}" * 100_000 + b',"size":1}},"hash":"xxh3-128","version":1}',
], ids=["document", "extra"])
def test_deeply_nested_manifest_refused(doc: bytes) -> None:
    """Nesting past the parser's stack is bad JSON, not a crash."""
    with pytest.raises(StoreError, match="not valid JSON \\(nested too deeply\\)"):
        Manifest.from_bytes(doc, "m.json")


@pytest.mark.parametrize("path", [b'"d/\xed\xa0\x80.txt"', b'"d/\\ud800.txt"'],
                         ids=["raw", "escaped"])
def test_a_path_with_a_lone_surrogate_is_refused(path: bytes) -> None:
    """JSON lets a lone surrogate through (escaped, or raw as Python reads
    it), but no file name written out can hold one: refused as a bad entry."""
    doc = _canonical_doc({"a.txt": {"digest": D1, "size": 1}, "d/x.txt": {"digest": D1, "size": 1}})
    doc = doc.replace(b'"d/x.txt"', path)
    with pytest.raises(StoreError, match=r"refused entry.*not valid UTF-8"):
        Manifest.from_bytes(doc, "m.json")


@pytest.mark.usefixtures("small_pieces")
def test_malformed_canonical_manifest_refused() -> None:
    doc = _canonical_doc({f"d/f{i:04}": {"digest": D1, "size": i} for i in range(700)})
    for broken in (doc.replace(b"},", b"}", 1), doc.replace(b"},", b"},,", 1),
                   doc.replace(b'"size":350', b'"size":0350'), doc[:-1] + b"\xff}",
                   doc.replace(b'"d/f0400"', b'"d/f\xff"')):
        with pytest.raises(StoreError, match="not valid JSON"):
            Manifest.from_bytes(broken)
    twice = doc.replace(b'"d/f0400":{"digest":"' + D1.encode() + b'","size":400}',
                        b'"d/f0399":{"digest":"' + D2.encode() + b'","size":9}')
    last = Manifest.from_bytes(twice)
    assert len(last) == 699 and last.entries["d/f0399"].digest == D2  # as json: the last wins


def test_a_frozen_manifests_extra_is_read_only_at_every_depth() -> None:
    """An entry's ``extra`` stayed a dict anyone could change after the rest
    of a logged manifest was made read-only. Now it and every object and
    list in it refuse changes; the manifest writes the same bytes; a copy
    (Manifest.copy, copy.deepcopy, pickle) can be changed and shares nothing."""
    import copy
    import pickle
    from collections import OrderedDict

    from wbtool.errors import ArtifactFinalizedError

    m = Manifest([ManifestEntry("r", D1, 3, "s3://b/k", {"etag": "e", "o": {"l": [1, {"x": 2}]}}),
                  ManifestEntry("a", D2, 3), ManifestEntry("d", D2, 3, extra=OrderedDict(k=1))])
    before = m.serialize()
    m.freeze("art")
    assert m.serialize() == before
    extra = m.entries["r"].extra
    assert extra == {"etag": "e", "o": {"l": [1, {"x": 2}]}}
    nested, items = extra["o"], extra["o"]["l"]
    changes = [
        lambda: extra.__setitem__("etag", "z"), lambda: extra.__delitem__("etag"),
        lambda: extra.update(etag="z"), lambda: extra.pop("etag"), lambda: extra.popitem(),
        lambda: extra.clear(), lambda: extra.setdefault("n", 1), lambda: extra.__ior__({}),
        lambda: nested.__setitem__("l", []), lambda: items.append(3),
        lambda: items.__setitem__(0, 5), lambda: items.extend([3]), lambda: items.pop(),
        lambda: items.sort(), lambda: items.__iadd__([3]), lambda: items[1].clear(),
    ]
    for change in changes:
        with pytest.raises(ArtifactFinalizedError, match="entry 'r' belongs to a logged"):
            change()
    with pytest.raises(ArtifactFinalizedError, match="entry 'd' belongs"):  # a dict's subclass
        m.entries["d"].extra["k"] = 2
    assert m.serialize() == before
    for thawed in (m.copy().entries["r"].extra, copy.deepcopy(extra),
                   pickle.loads(pickle.dumps(extra))):
        thawed["o"]["l"][1]["x"] = 3
        thawed["o"]["l"].append(4)
        assert type(thawed) is dict and thawed["o"]["l"] == [1, {"x": 3}, 4]
    assert m.serialize() == before


def test_a_frozen_entry_and_manifest_copy_as_plain_ones() -> None:
    """copy.copy, copy.deepcopy and pickle of a logged manifest's entry, and
    copy.deepcopy or pickle of the manifest itself, raised AttributeError.
    Now each copy is a plain entry (a manifest that can be changed) with its
    own ``extra``; the logged one is unchanged."""
    import copy
    import pickle

    m = Manifest([ManifestEntry("r", D1, 3, "s3://b/k", {"o": {"l": [1, {"x": 2}]}}),
                  ManifestEntry("a", D2, 3)])
    m.freeze("art")
    before = m.serialize()
    entry = m.entries["r"]
    for copied in (copy.copy(entry), copy.deepcopy(entry), pickle.loads(pickle.dumps(entry))):
        assert type(copied) is ManifestEntry and copied == entry
        copied.extra["o"]["l"][1]["x"] = 3
        copied.size = 4
    plain = copy.deepcopy(m.entries["a"])
    assert type(plain) is ManifestEntry and plain.extra is None and plain == m.entries["a"]
    for copied_manifest in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert not copied_manifest.frozen and copied_manifest.serialize() == before
        copied_manifest.entries["r"].extra["o"]["l"].append(4)
        copied_manifest.add(ManifestEntry("b", D2, 1))
        copied_manifest.remove("a")
    assert m.serialize() == before and m.frozen


def test_a_frozen_extra_refuses_init_again() -> None:
    """``__init__`` called again on a logged entry's extra (or a list in it,
    or the manifest's entries) refilled it in place."""
    from wbtool.errors import ArtifactFinalizedError

    m = Manifest([ManifestEntry("r", D1, 3, extra={"l": [1]})])
    m.freeze("art")
    before = m.serialize()
    extra = m.entries["r"].extra
    with pytest.raises(ArtifactFinalizedError, match="entry 'r' belongs"):
        extra.__init__(x=1)
    with pytest.raises(ArtifactFinalizedError, match="entry 'r' belongs"):
        extra["l"].__init__([2])
    with pytest.raises(ArtifactFinalizedError, match="'art'"):
        m.entries.__init__({})  # type: ignore[misc]
    assert m.serialize() == before
