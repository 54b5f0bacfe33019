from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wbtool.hashing import hash_bytes
from wbtool.store.layout import Store
from wbtool.store.objects import SMALL


@pytest.fixture
def store(store_dir: Path) -> Store:
    return Store.open(store_dir)


def test_layout_is_sharded(store: Store) -> None:
    digest, new = store.objects.put_bytes(b"hello")
    assert new
    p = Path(store.objects.path(digest))
    assert p.parent.name == digest[:2] and p.name == digest[2:]
    assert p.read_bytes() == b"hello"
    assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0  # read-only
    assert store.objects.put_bytes(b"hello") == (digest, False)
    assert list(store.objects) == [digest]


@pytest.mark.parametrize("size", [0, 10, SMALL + 12345])
def test_put_file_copies(store: Store, tmp_path: Path, size: int) -> None:
    src = tmp_path / "f.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    digest, got, new = store.objects.put_file(str(src))
    assert (digest, got, new) == (hash_bytes(data), size, True)
    obj = Path(store.objects.path(digest))
    assert obj.read_bytes() == data
    assert obj.stat().st_ino != src.stat().st_ino
    # the user's file is untouched and still writable
    assert src.read_bytes() == data and os.access(src, os.W_OK)
    src.write_bytes(b"changed")
    assert obj.read_bytes() == data
    assert not os.listdir(store.tmp)


def test_immutable_hardlinks(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"promise")
    digest, _size, new = store.objects.put_file(str(src), immutable=True)
    assert new
    assert os.stat(store.objects.path(digest)).st_ino == src.stat().st_ino
    assert stat.S_IMODE(src.stat().st_mode) & 0o222 == 0


def test_verify_detects_corruption(store: Store) -> None:
    digest, _ = store.objects.put_bytes(b"good")
    assert store.objects.verify(digest)
    p = store.objects.path(digest)
    os.chmod(p, 0o644)
    Path(p).write_bytes(b"evil")
    assert not store.objects.verify(digest)
    assert not store.objects.verify(hash_bytes(b"absent"))
