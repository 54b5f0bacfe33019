"""``wbtool sync --check``: manifests and objects that a remote lost behind
the store's back (deleted by hand, by a lifecycle rule, cut short) are sent
again, though the remote still holds the versions that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree, read_tree
from tests.remote.conftest import Backend, make_backend
from tests.remote.test_sync import Store
from wbtool.remote import records


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    return (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend))


FILES = {"a.txt": b"alpha\n" * 10, "b.txt": b"beta\n" * 20, "c/d.txt": b"delta\n"}


def _sent(store: Store, *args: str) -> tuple[int, int, int]:
    res = store.result("sync", "--no-runs", *args)
    return res["objects_sent"], res["manifests_sent"], res["versions_sent"]


def test_sync_check_sends_again_lost_manifests_and_objects(
        stores: tuple[Store, Store], backend: Backend, tmp_path: Path) -> None:
    a, b = stores
    src = make_tree(tmp_path / "src", FILES)
    a("artifact", "log", "data", str(src), "--type", "dataset")
    assert _sent(a) == (3, 1, 1)
    remote = backend.open()
    manifest = next(p for p in remote.list("manifests"))
    digest = records.digest_of_manifest_path(manifest)
    objects = remote.list("objects")
    remote.delete(manifest)
    remote.delete(objects[0])
    remote.write(objects[1], b"cut")  # another size than the object's

    assert _sent(a) == (0, 0, 0)  # a plain sync trusts the version record
    assert _sent(a, "--check", "--dry-run") == (2, 1, 0)
    assert remote.list("manifests") == []  # a dry run writes nothing
    assert _sent(a, "--check") == (2, 1, 0)
    assert _sent(a, "--check") == (0, 0, 0)
    assert remote.list("manifests") == [records.manifest_path(str(digest))]
    assert len(remote.list("objects")) == 3

    pulled = b.result("pull")
    assert pulled["refused"] == [] and pulled["warnings"] == []
    b("artifact", "download", "data:v0", "--root", str(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == FILES
