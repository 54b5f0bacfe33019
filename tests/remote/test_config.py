"""Named remotes in the store's config.yaml."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from wbtool.errors import ConflictError, InvalidNameError, NotFoundError, UsageError
from wbtool.remote import config
from wbtool.store.layout import Store


@pytest.fixture
def store(store_dir: Path) -> Store:
    return Store.open(store_dir)


def test_add_list_default_remove(store: Store, tmp_path: Path) -> None:
    team = config.add(store, "team", "s3://bucket/wbtool/", {"endpoint_url": "http://minio:9000"})
    assert (team.name, team.url, team.default) == ("team", "s3://bucket/wbtool", False)
    config.add(store, "nfs", "./shared", default=True)

    specs = config.list(Store(store.path))  # read back from disk
    assert [(s.name, s.url, s.default) for s in specs] == [
        ("nfs", str(tmp_path / "work" / "shared"), True), ("team", "s3://bucket/wbtool", False)]
    assert specs[1].options == {"endpoint_url": "http://minio:9000"}

    assert config.set_default(store, "team").default
    default = config.get_default(Store(store.path))
    assert default is not None and default.name == "team"
    removed = config.remove(store, "team")
    assert removed.default and removed.url == "s3://bucket/wbtool"
    assert config.get_default(store) is None
    assert [s.name for s in config.list(store)] == ["nfs"]

    doc = json.loads((store.path / "config.yaml").read_text())
    assert doc["remotes"] == {"nfs": {"url": str(tmp_path / "work" / "shared"), "options": {}}}
    assert doc["default_remote"] is None and doc["format"] == 1


def test_duplicate_name_is_a_conflict(store: Store) -> None:
    config.add(store, "team", "s3://bucket/a")
    with pytest.raises(ConflictError, match="exists already"):
        config.add(store, "team", "s3://bucket/b")
    assert config.resolve(store, "team") == ("s3://bucket/a", {})


@pytest.mark.parametrize("name", ["", "a/b", "..", "a b", "s3://x"])
def test_bad_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidNameError):
        config.add(store, name, "s3://bucket")


@pytest.mark.parametrize("options", [
    {"key": "AKIA..."}, {"secret": "x"}, {"token": "x"}, {"password": "x"},
    {"aws_secret_access_key": "x"}, {"connection_string": "x"}, {"account_key": "x"},
    {"client_kwargs": {"aws_session_token": "x"}},
])
def test_credentials_are_refused(store: Store, options: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="looks like a credential"):
        config.add(store, "team", "s3://bucket", options)
    assert config.list(store) == []


def test_ordinary_options_are_kept(store: Store) -> None:
    options = {"endpoint_url": "https://minio", "profile": "team", "anon": False,
               "config_kwargs": {"connect_timeout": 2}}
    config.add(store, "team", "s3://bucket", options)
    assert config.resolve(store, "team") == ("s3://bucket", options)


def test_a_gcs_token_mode_is_no_credential(store: Store) -> None:
    config.add(store, "gcs", "gs://bucket", {"token": "anon", "project": "p"})
    assert config.resolve(store, "gcs") == ("gs://bucket", {"token": "anon", "project": "p"})


def test_parse_options() -> None:
    assert config.parse_options(["endpoint_url=http://h:9000", "anon=true", "n=3",
                                 'config_kwargs={"connect_timeout": 2}', "profile=a=b"]) == {
        "endpoint_url": "http://h:9000", "anon": True, "n": 3,
        "config_kwargs": {"connect_timeout": 2}, "profile": "a=b"}
    for bad in (["novalue"], ["=x"], ["not-a-keyword=1"], ["secret_key=x"]):
        with pytest.raises(UsageError):
            config.parse_options(bad)


def test_resolve(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no default remote"):
        config.resolve(store)
    config.add(store, "team", "s3://bucket/p", {"profile": "x"}, default=True)
    assert config.resolve(store) == ("s3://bucket/p", {"profile": "x"})
    assert config.resolve(store, "team") == ("s3://bucket/p", {"profile": "x"})
    assert config.resolve(store, "gs://other/") == ("gs://other", {})
    assert config.resolve(store, "./here") == (str(tmp_path / "work" / "here"), {})
    with pytest.raises(NotFoundError, match="remote not found: nope"):
        config.resolve(store, "nope")
    with pytest.raises(UsageError):
        config.resolve(store, "ftp://host/x")


def test_unknown_remotes_are_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        config.remove(store, "nope")
    with pytest.raises(NotFoundError):
        config.set_default(store, "nope")


def test_local_remotes_take_no_options(store: Store) -> None:
    with pytest.raises(UsageError, match="no options"):
        config.add(store, "nfs", "/srv/share", {"auto_mkdir": True})


def test_concurrent_adds_are_all_kept(store_dir: Path) -> None:
    Store.open(store_dir)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def add(i: int) -> None:
        try:
            start.wait()
            config.add(Store.open(store_dir), f"r{i}", f"s3://bucket/{i}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert [s.name for s in config.list(Store(store_dir))] == [f"r{i}" for i in range(8)]


def test_hand_edited_config_is_checked(store: Store) -> None:
    (store.path / "config.yaml").write_text(
        "format: 1\ndefault_remote: team\nremotes:\n  team: {options: {}}\n")
    with pytest.raises(Exception, match="needs a 'url'"):
        config.list(Store(store.path))
    (store.path / "config.yaml").write_text(
        "format: 1\ndefault_remote: team\nremotes:\n  team: {url: 's3://b/p'}\n")
    assert config.resolve(Store(store.path)) == ("s3://b/p", {})
