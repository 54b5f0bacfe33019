"""Bad values of the options and arguments shared by many commands, through
the real entry point: one line on stderr, a documented exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, is_error, make_tree


@pytest.mark.parametrize("argv", [
    ["artifact", "log", "ds", "data"],  # the entry point's fast path
    ["artifact", "add", "ds", "data"],
    ["artifact", "ls"],
    ["artifact", "verify", "ds"],
    ["artifact", "checkout", "ds", "out"],
    ["runs", "list"],
    ["runs", "export"],
    ["sync"],
])
@pytest.mark.parametrize("project", ["", "a b", "p\x1b"])
def test_an_empty_or_invalid_project_is_a_usage_error(
    cli: Cli, store_dir: Path, argv: list[str], project: str
) -> None:
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    is_error(cli(*argv, "--project", project), 2, "invalid project name")
    assert not (cli.cwd / "out").exists()


@pytest.mark.parametrize("argv", [
    ["artifact", "log", "ds", "data"],  # the entry point's fast path
    ["artifact", "add", "ds", "data"],
    ["artifact", "ls"],
    ["artifact", "verify", "ds"],
    ["runs", "list"],
    ["runs", "export"],
    ["pull"],
    ["sync"],
    ["run", "--", sys.executable, "-c", ""],
])
@pytest.mark.parametrize("project", ["a b", "a/b", "p\x1b"])
@pytest.mark.parametrize("source", ["env", "file"])
def test_an_invalid_project_from_the_settings_is_a_usage_error(
    cli: Cli, store_dir: Path, argv: list[str], project: str, source: str
) -> None:
    """Not only ``--project``: one set by a variable or a settings file is
    refused too, naming where it was set, rather than matching nothing."""
    import json

    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    env = {}
    if source == "env":
        env["WBTOOL_PROJECT"] = project
        where = "set by env WBTOOL_PROJECT"
    else:
        store_dir.mkdir(parents=True)
        (store_dir / "settings.yaml").write_text(f"project: {json.dumps(project)}\n")
        where = f"set by workspace file {store_dir / 'settings.yaml'}"
    is_error(cli(*argv, env=env), 2, "invalid project name", where)
    assert not (store_dir / "index.db").exists() and not (store_dir / "runs").exists()
    assert cli("runs", "list", "--project", "p", env=env, check=True).out == ""


def _invalid_project(store_dir: Path, source: str) -> tuple[dict[str, str], str]:
    """The environment that sets the project ``a b`` from ``source``, and
    the words that name where it was set."""
    if source == "env":
        return {"WBTOOL_PROJECT": "a b"}, "set by env WBTOOL_PROJECT"
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "settings.yaml").write_text("project: a b\n")
    return {}, f"set by workspace file {store_dir / 'settings.yaml'}"


@pytest.mark.parametrize("source", ["env", "file"])
def test_settings_show_shows_an_invalid_project_with_a_warning(
    cli: Cli, store_dir: Path, source: str
) -> None:
    """``settings show`` is where to find where a project was set, so it
    still shows it (exit 0), with one warning on stderr that it is refused."""
    env, where = _invalid_project(store_dir, source)
    for argv in (["settings", "show"], ["settings", "show", "project", "--json"]):
        res = cli(*argv, env=env)
        assert res.code == 0
        lines = res.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("wbtool: warning: invalid project name "
                                                       "'a b'"), res.err
        assert where in lines[0] and "refuse" in lines[0]
    res = cli("settings", "show", "project", env=env)
    assert res.out == f"project\t'a b'\t{where.removeprefix('set by ')}\n"
    assert cli("settings", "show", "quiet", env=env).err == ""
    assert cli("settings", "show", "project", env={"WBTOOL_PROJECT": "ok"}).err == ""


@pytest.mark.parametrize("argv", [["gc"], ["artifact", "cache", "gc"]])
def test_gc_collects_every_project_whatever_project_is_set(
    cli: Cli, store_dir: Path, argv: list[str]
) -> None:
    """Objects are shared by every project, so collecting them never reads
    the settings' project: an invalid one does not keep space from being
    freed (the commands that work in a project refuse it)."""
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    cli("artifact", "log", "ds", "data", "--type", "dataset", check=True)
    env, _where = _invalid_project(store_dir, "env")
    res = cli(*argv, "--grace", "0", env=env)
    assert (res.code, res.err) == (0, ""), res.err
    assert res.out.startswith("removed 0 object(s)")


# the entry point's fast path reads "--project"; "-qp" (grouped) is left to click
@pytest.mark.parametrize("option", ["--project", "-qp"])
@pytest.mark.parametrize("project", ["", "a b"])
def test_run_refuses_an_empty_or_invalid_project(
    cli: Cli, store_dir: Path, option: str, project: str
) -> None:
    marker = cli.cwd / "ran"
    res = cli("run", option, project, "--", sys.executable, "-c",
              f"open({str(marker)!r}, 'w')")
    is_error(res, 2, "invalid project name")
    assert not marker.exists()
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())



def test_a_run_whose_folder_was_deleted_by_hand(cli: Cli, store_dir: Path) -> None:
    """The index still lists it: the commands that read its files say that its
    folder is missing (a damaged store, as doctor reports), the listings
    warn, and ``runs delete`` removes what is left."""
    import shutil

    from tests.cli.test_runs_cli import make_run

    gone, kept = make_run(), make_run()
    shutil.rmtree(store_dir / "runs" / gone.id)
    for command in ("show", "logs", "history", "system"):
        is_error(cli("runs", command, gone.id), 7, f"run {gone.id}", "folder", "missing",
                 f"wbtool runs delete {gone.id} --yes")
    assert cli("runs", "show", kept.id).code == 0
    for argv in (["runs", "list"], ["runs", "list", "--json"], ["runs", "export"]):
        res = cli(*argv)
        assert res.code == 0 and gone.id in res.out and kept.id in res.out
        assert res.err.startswith("wbtool: warning: 1 run(s) listed have no folder")
        assert res.err.count("\n") == 1 and gone.id in res.err and kept.id not in res.err
    assert cli("doctor").code == 4
    assert cli("runs", "delete", gone.id, "--yes").code == 0
    res = cli("runs", "list")
    assert res.code == 0 and res.err == "" and gone.id not in res.out
    assert cli("doctor").code == 0


@pytest.mark.parametrize("argv", [
    ["remote", "remove", ""], ["remote", "default", ""], ["remote", "remove", "a b"],
    ["sync", "--remote", ""], ["pull", "--remote", " "], ["gc", "--remote", ""],
])
@pytest.mark.parametrize("with_store", [False, True])
def test_an_empty_or_invalid_remote_name_is_a_usage_error(
    cli: Cli, store_dir: Path, tmp_path: Path, argv: list[str], with_store: bool
) -> None:
    if with_store:
        (tmp_path / "r").mkdir()
        cli("remote", "add", "r", str(tmp_path / "r"), "--default", check=True)
    res = cli(*argv)
    is_error(res, 2, "invalid remote")
    if with_store:
        assert cli("remote", "default").out == f"r\t{tmp_path / 'r'}\n"


@pytest.mark.parametrize(("argv", "words"), [
    (["artifact", "download", "ds:v0", "--root", ""], "--root is empty"),  # fast path
    (["artifact", "download", "ds:v0", "--root", "", "--link", "copy"], "--root is empty"),
    (["artifact", "verify", "ds:v0", "--root", ""], "--root is empty"),
    (["artifact", "log", "ds", ""], "a PATH is empty"),
    (["artifact", "log", "ds", "data", ""], "a PATH is empty"),
    (["artifact", "add", "ds", ""], "a PATH is empty"),
    (["artifact", "log", "ds", "data", "--run", ""], "invalid run id ''"),
    (["artifact", "log", "ds", "new", "--name-in-artifact", ""], "invalid entry path ''"),
    (["artifact", "add", "ds", "new", "--name-in-artifact", ""], "invalid entry path ''"),
])
def test_an_empty_path_or_name_is_not_taken_for_none(
    cli: Cli, store_dir: Path, argv: list[str], words: str
) -> None:
    """Read as no option, these would write into the default folder, check the
    current folder, or log a version the command did not ask for."""
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    make_tree(cli.cwd / "new", {"b.txt": b"b"})
    cli("artifact", "log", "ds", "data", "--type", "dataset", check=True)
    res = cli(*argv, env={"WBTOOL_RUN_ID": ""})
    is_error(res, 2, words)
    assert not (cli.cwd / "artifacts").exists()
    versions = cli("artifact", "ls", "ds", "--json").json()["result"]  # type: ignore[index]
    assert [v["version"] for v in versions] == ["v0"]
    assert cli("artifact", "status").out.strip() in ("", "nothing staged")


def test_verify_names_a_file_given_as_the_folder(cli: Cli, store_dir: Path) -> None:
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    cli("artifact", "log", "ds", "data", "--type", "dataset", check=True)
    is_error(cli("artifact", "verify", "ds:v0", "--root", "data/a.txt"), 4,
             "a.txt is not a folder")
    is_error(cli("artifact", "verify", "ds:v0", "--root", "nowhere"), 4, "nowhere does not exist")


@pytest.mark.parametrize("argv", [
    ["log", "loss=1"],  # the entry point's fast path
    ["log", "loss=1", "--json"],
    ["log", "loss=1", "--summary"],
    ["alert", "t", "x"],
])
def test_logging_to_a_run_whose_folder_was_deleted_by_hand(
    cli: Cli, store_dir: Path, argv: list[str]
) -> None:
    """As ``runs show`` says: the index lists the run, so it is no missing run
    but a damaged store, with the repair named; nothing is written."""
    import shutil

    from tests.cli.test_runs_cli import make_run

    gone = make_run()
    shutil.rmtree(store_dir / "runs" / gone.id)
    is_error(cli(*argv, "--run", gone.id), 7, f"run {gone.id}", "folder", "missing",
             f"wbtool runs delete {gone.id} --yes")
    assert not (store_dir / "runs" / gone.id).exists()
    is_error(cli(*argv, "--run", "nosuchrun"), 3, "run not found: nosuchrun")


@pytest.mark.parametrize(("option", "value"), [
    ("--metadata", '{"\\ud800": 1}'),  # JSON's escape of a lone surrogate
    ("--metadata", '{"a": ["x\\udcff"]}'),
    ("--description", "bad \udcff byte"),  # the byte 0xff in the argument
])
@pytest.mark.parametrize("command", ["log", "add-then-log"])
def test_metadata_or_a_description_that_is_not_utf8_is_refused_first(
    cli: Cli, store_dir: Path, option: str, value: str, command: str
) -> None:
    """Such metadata was stored, and every later sync of the store then
    failed ("text that is not valid UTF-8 cannot be kept here"); such a
    description failed only once the files were stored."""
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    if command == "log":
        res = cli("artifact", "log", "ds", "data", "-t", "dataset", option, value)
    else:
        cli("artifact", "add", "ds", "data", "-t", "dataset", check=True)
        res = cli("artifact", "log", "ds", option, value)
    is_error(res, 2, f"{option} holds text that is not valid UTF-8")
    assert cli("artifact", "ls", "--json", check=True).json()["result"] == []
    if command == "log":  # refused before any file was read
        assert not [p for p in (store_dir / "objects").rglob("*") if p.is_file()]
