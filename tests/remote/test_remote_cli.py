"""``wbtool remote`` through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, is_error, unprivileged, write_protected
from wbtool.store.layout import Store


def result(cli: Cli, *args: str) -> Any:
    """The ``result`` of a ``--json`` command that must succeed."""
    doc: Any = cli(*args, "--json", check=True).json()
    assert doc["schema"] == 1 and doc["command"] == " ".join(args[:2])
    return doc["result"]


def test_add_list_default_remove(cli: Cli, tmp_path: Path) -> None:
    added = result(cli, "remote", "add", "team", "s3://bucket/wbtool/", "--option",
                   "endpoint_url=http://127.0.0.1:9000", "-o",
                   'config_kwargs={"connect_timeout": 2}')
    assert added == {"name": "team", "url": "s3://bucket/wbtool", "default": False,
                     "options": {"endpoint_url": "http://127.0.0.1:9000",
                                 "config_kwargs": {"connect_timeout": 2}}}
    shared = tmp_path / "work" / "shared"
    res = cli("remote", "add", "nfs", "shared", "--default", check=True)
    assert res.out == f"added remote nfs at {shared} (default)\n"

    listed = result(cli, "remote", "list")
    assert [(r["name"], r["url"], r["default"]) for r in listed] == [
        ("nfs", str(shared), True), ("team", "s3://bucket/wbtool", False)]
    plain = cli("remote", "list", check=True).out.splitlines()
    assert [line.split("\t")[:3] for line in plain] == [
        ["nfs", str(shared), "*"], ["team", "s3://bucket/wbtool", ""]]

    assert result(cli, "remote", "default", "team")["default"] is True
    assert cli("remote", "default", check=True).out == "team\ts3://bucket/wbtool\n"

    assert result(cli, "remote", "remove", "team")["name"] == "team"
    assert result(cli, "remote", "default") is None
    assert [r["name"] for r in result(cli, "remote", "list")] == ["nfs"]


def test_errors_have_exit_codes_and_one_line(cli: Cli, tmp_path: Path) -> None:
    cli("remote", "add", "team", "s3://bucket/a", check=True)
    (tmp_path / "afile").write_bytes(b"not a folder")
    cases = [
        (("add", "x", str(tmp_path / "afile")), 2, "is not a folder"),
        (("add", "team", "s3://bucket/b"), 5, "exists already"),
        (("add", "x", "s3://bucket", "-o", "secret=hunter2"), 2, "looks like a credential"),
        (("add", "x", "s3://bucket", "-o", "aws_access_key_id=AKIA"), 2, "credential"),
        (("add", "x", "ftp://host/x"), 2, "unsupported remote URL"),
        (("add", "x", "s3://bucket", "-o", "novalue"), 2, "KEY=VALUE"),
        (("add", "a/b", "s3://bucket"), 2, "invalid remote name"),
        (("remove", "nope"), 3, "remote not found: nope"),
        (("default", "nope"), 3, "remote not found: nope"),
    ]
    for args, code, text in cases:
        res = cli("remote", *args)
        assert res.code == code, (args, res.code, res.err)
        assert res.err.startswith("wbtool: error: ") and res.err.count("\n") == 1, res.err
        assert text in res.err, res.err
        assert "hunter2" not in res.err + res.out
    assert [r["name"] for r in result(cli, "remote", "list")] == ["team"]


def test_a_local_remote_that_became_a_file_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    cli("remote", "add", "nfs", str(tmp_path / "share"), "--default", check=True)
    (tmp_path / "share").write_bytes(b"")
    res = cli("sync")
    assert res.code == 2
    assert res.err == f"wbtool: error: remote {tmp_path / 'share'} is not a folder\n"


def test_a_remote_inside_the_store_is_refused(cli: Cli, tmp_path: Path,
                                              store_dir: Path) -> None:
    """The store itself (or a folder in it) was taken as a remote: a sync
    wrote the remote's folders into the store, and a remote gc would sweep
    the store's own objects."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_bytes(b"x" * 100)
    cli("artifact", "log", "ds", str(data), "--type", "d", check=True)
    before = sorted(p.name for p in store_dir.iterdir())
    (tmp_path / "link").symlink_to(store_dir)
    inside = [str(store_dir), str(store_dir / "objects"), f"file://{store_dir}/runs",
              str(tmp_path / "link")]
    for url in inside:
        is_error(cli("remote", "add", "self", url), 2, "inside the store", "folder of its own")
    for args in (("sync",), ("pull", "ds"), ("gc", "--yes", "--grace", "0"), ("doctor",)):
        is_error(cli(*args, "--remote", str(store_dir)), 2, "inside the store")
    config = store_dir / "config.yaml"
    config.write_text(f'{{"format": 1, "remotes": {{"self": {{"url": "{store_dir}"}}}}}}')
    is_error(cli("sync", "--remote", "self"), 2, "inside the store")
    assert sorted(p.name for p in store_dir.iterdir()) == before
    cli("artifact", "verify", "ds", check=True)
    # a folder beside the store, or one that holds it, is a remote of its own
    cli("remote", "add", "beside", str(tmp_path / "remote"), check=True)
    cli("remote", "add", "above", str(store_dir.parent), check=True)


def test_a_hand_broken_remotes_section_is_a_store_error_for_every_command(
        cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    """add, remove and default check config.yaml as list does, and leave it
    as it was."""
    Store.open(store_dir)  # an empty store
    for broken in ('{"format": 1, "remotes": "abc"}',
                   '{"format": 1, "remotes": {"x": "abc"}}',
                   '{"format": 1, "remotes": ["x"]}',
                   'format: 1\nremotes:\n  1: {url: /tmp/a}\n',
                   'format: 1\nremotes:\n  x: {url: /tmp/a, options: {a: {1: b, c: d}}}\n'):
        (store_dir / "config.yaml").write_text(broken)
        for args in (("list",), ("add", "r", str(tmp_path / "folder")), ("remove", "x"),
                     ("default", "x")):
            res = cli("remote", *args)
            assert res.code == 7, (broken, args, res.err)
            assert res.err.startswith("wbtool: error: ") and res.err.count("\n") == 1, res.err
            assert "config.yaml" in res.err and "Traceback" not in res.err
        assert (store_dir / "config.yaml").read_text() == broken


def test_looking_at_remotes_creates_no_store(cli: Cli, store_dir: Path) -> None:
    assert cli("remote", "list", check=True).out == ""
    assert result(cli, "remote", "list") == []
    assert result(cli, "remote", "default") is None
    for args in (("remove", "team"), ("default", "team")):
        res = cli("remote", *args)
        assert (res.code, res.err) == (3, "wbtool: error: remote not found: team\n")
    assert not store_dir.exists()
    cli("remote", "add", "team", "s3://bucket/a", check=True)  # adding creates it
    assert [r["name"] for r in result(cli, "remote", "list")] == ["team"]


@pytest.mark.parametrize(("url", "option", "words"), [
    ("s3://b", "endpoint_url=999", "'endpoint_url' must be text, not the number 999"),
    ("s3://b", "profile=123", """quote it as JSON: -o 'profile="123"'"""),
    ("s3://b", "region_name=1", "'region_name' must be text"),
    ("s3://b", 'client_kwargs={"region_name": 5}', "'client_kwargs.region_name' must be text"),
    ("s3://b", "client_kwargs=3", "'client_kwargs' must be a mapping"),
    ("s3://b", "anon=yes", "'anon' must be true or false, not the text 'yes'"),
    ("s3://b", "anon=1", "'anon' must be true or false, not the number 1"),
    ("gs://b", "project=7", "'project' must be text"),
    ("az://c", "account_name=null", "'account_name' must be text, not null"),
    ("az://c", "retry_total=true", "'retry_total' must be a number"),
])
def test_an_option_of_the_wrong_type_is_refused_when_added(
    cli: Cli, store_dir: Path, url: str, option: str, words: str
) -> None:
    """Decoded as JSON, such a value used to be kept, and every later sync
    failed with the backend's own words ("'int' object is not iterable")."""
    cli("remote", "add", "kept", "s3://k", "-o", "endpoint_url=http://127.0.0.1:9", check=True)
    config = (store_dir / "config.yaml").read_bytes()
    is_error(cli("remote", "add", "r", url, "-o", option), 2, words)
    assert (store_dir / "config.yaml").read_bytes() == config


def test_options_of_the_right_type_are_kept(cli: Cli) -> None:
    added = result(cli, "remote", "add", "r", "s3://b", "-o", "anon=true", "-o",
                   'client_kwargs={"region_name": "eu-west-1"}', "-o", 'profile="123"',
                   "-o", 'config_kwargs={"retries": {"total_max_attempts": 2}}')
    assert added["options"] == {"anon": True, "client_kwargs": {"region_name": "eu-west-1"},
                                "profile": "123",
                                "config_kwargs": {"retries": {"total_max_attempts": 2}}}


def test_a_hand_edited_option_of_the_wrong_type_is_named_by_sync(
    cli: Cli, store_dir: Path
) -> None:
    cli("remote", "add", "r", "s3://b", "--default", "-o", "endpoint_url=http://127.0.0.1:9",
        check=True)
    path = store_dir / "config.yaml"
    path.write_text(path.read_text().replace('"http://127.0.0.1:9"', "999"))
    assert '"endpoint_url": 999' in path.read_text()
    is_error(cli("sync"), 2, "remote s3://b: remote option 'endpoint_url' must be text")


def test_changing_remotes_of_a_store_this_user_cannot_write_is_a_store_error(
    cli: Cli, store_dir: Path
) -> None:
    """``remote add``, ``remove`` and ``default`` change the store's
    config.yaml: in a store this user cannot write they stop with exit 7 in
    the one line the other commands that change a store give, not with a
    temporary file's path and exit 1."""
    prefix = unprivileged()
    cli("remote", "add", "team", "s3://bucket/x", check=True)
    before = (store_dir / "config.yaml").read_bytes()

    def wbtool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, sys.executable, "-m", "wbtool", *args],
                              capture_output=True, text=True, cwd=cli.cwd, timeout=60)

    with write_protected(store_dir):
        refused = [wbtool("remote", "add", "lab", "s3://bucket/y"),
                   wbtool("remote", "default", "team"), wbtool("remote", "remove", "team")]
        listed = wbtool("remote", "list")
    for res in refused:
        assert res.returncode == 7, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("wbtool: error: ")
        assert "cannot be written here" in res.stderr and "needs write access" in res.stderr
    assert listed.returncode == 0 and listed.stdout.startswith("team\ts3://bucket/x")
    assert (store_dir / "config.yaml").read_bytes() == before
