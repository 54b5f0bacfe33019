"""Versions and objects that are only on the default remote are fetched when
they are used: ``wbtool artifact download/checkout/info``, ``Api().artifact``,
``use_artifact`` and ``Artifact.download``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree, read_tree
from tests.remote.conftest import Backend
from tests.remote.test_sync import Store
from wbtool.errors import EXIT_NOT_FOUND

V0 = {"a.txt": b"first\n", "big.bin": os.urandom((4 << 20) + 3)}
V1 = {**V0, "a.txt": b"second\n"}


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    """A pushed two versions of ``data``; B shares the remote and holds nothing."""
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    src = tmp_path / "src"
    make_tree(src, V0)
    a("artifact", "log", "data", str(src), "--type", "dataset", "-a", "best")
    make_tree(src, V1)
    a("artifact", "log", "data", str(src), "--type", "dataset")
    a("sync", "--no-runs")
    return a, Store(cli, tmp_path / "b" / ".wbtool", backend)


def test_cli_download_pulls_a_version_only_on_the_remote(stores: tuple[Store, Store],
                                                          tmp_path: Path) -> None:
    _, b = stores
    res = b("artifact", "download", "data:v0", "--root", str(tmp_path / "out0"))
    assert "fetched it from" in res.err
    assert read_tree(tmp_path / "out0") == V0
    # The remote's v0 is this store's first version: v1 comes next, as v1.
    b("artifact", "checkout", "data:latest", str(tmp_path / "out1"))  # present: latest is v0
    assert read_tree(tmp_path / "out1") == V0
    assert b.result("artifact", "info", "data:v1")["digest"]  # pulled by info
    b("artifact", "checkout", "data:v1", str(tmp_path / "out1"))
    assert read_tree(tmp_path / "out1") == V1
    listed = {r["version"]: r["aliases"] for r in b.result("artifact", "ls", "data")}
    assert listed == {"v0": ["best"], "v1": ["latest"]}
    again = b("artifact", "download", "data:v1", "--root", str(tmp_path / "out2"))
    assert "fetching" not in again.err  # now local


def test_missing_objects_are_fetched_again(stores: tuple[Store, Store], tmp_path: Path) -> None:
    _, b = stores
    b("pull")
    big = next(p for p in (b.path / "objects").rglob("*") if p.is_file()
               and p.stat().st_size == len(V0["big.bin"]))
    big.unlink()  # a lost or cleaned cache
    res = b("artifact", "download", "data:v1", "--root", str(tmp_path / "out"))
    assert "fetching 1 missing object(s)" in res.err
    assert read_tree(tmp_path / "out") == V1
    assert big.exists()


def test_sdk_use_artifact_pulls_from_the_remote(stores: tuple[Store, Store],
                                                tmp_path: Path) -> None:
    _, b = stores
    script = (
        "import sys, wbtool\n"
        "with wbtool.init(project='uncategorized', settings={'quiet': True, "
        "'console': 'off'}) as run:\n"
        "    art = run.use_artifact('data:best')\n"
        "    print(art.download(sys.argv[1]))\n"
        "print(wbtool.Api().artifact('data:v1').download(sys.argv[2]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "o0"), str(tmp_path / "o1")],
        env={**os.environ, **b.env}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert read_tree(tmp_path / "o0") == V0
    assert read_tree(tmp_path / "o1") == V1


def test_not_found_anywhere_is_not_found(stores: tuple[Store, Store], cli: Cli,
                                         tmp_path: Path) -> None:
    _, b = stores
    for ref in ("data:v7", "data:nosuchalias", "nothing"):
        res = b("artifact", "download", ref, code=EXIT_NOT_FOUND)
        assert res.err.count("\n") == 1 and "nor on the default remote" in res.err, res.err
        assert ref.split(":")[-1] in res.err
    lone = cli("artifact", "download", "data:v0",
               env={"WBTOOL_DIR": str(tmp_path / "c" / ".wbtool")})
    assert lone.code == EXIT_NOT_FOUND and "fetching" not in lone.err  # no remote: local only


def test_artifact_exists_asks_the_remote_without_pulling(stores: tuple[Store, Store]) -> None:
    _, b = stores
    script = (
        "import json, wbtool\n"
        "api = wbtool.Api()\n"
        "print(json.dumps([api.artifact_exists(n, t) for n, t in [\n"
        "    ('data', None), ('data:v1', None), ('data:best', 'dataset'), ('data:v9', None),\n"
        "    ('data:best', 'model'), ('data:nope', None), ('other', None)]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, **b.env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[true,", "true,", "true,", "false,", "false,", "false,",
                                  "false]"]
    assert b.result("artifact", "ls") == []  # nothing was pulled
