from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wbtool
from tests.conftest import Cli, make_tree, unprivileged
from wbtool.errors import SettingsError
from wbtool.settings import Settings, load


def test_defaults_and_validation() -> None:
    s = wbtool.Settings(project="p", x_stats_sampling_interval="0.5")
    assert s.project == "p"
    assert s.x_stats_sampling_interval == 0.5
    assert s.mode == "offline"
    with pytest.raises(SettingsError, match="nope"):
        wbtool.Settings(nope=1)
    with pytest.raises(SettingsError, match="heartbeat_seconds"):
        wbtool.Settings(heartbeat_seconds="soon")
    with pytest.raises(SettingsError, match="mode"):
        wbtool.Settings(mode="sometimes")
    with pytest.raises(SettingsError, match="run_tags"):
        wbtool.Settings(run_tags=["x" * 65])
    for tag in ("a\nb", "a\tb", "\x1b[31mred"):  # as an artifact's tags: they break listings
        with pytest.raises(SettingsError, match="holds a control character"):
            wbtool.Settings(run_tags=[tag])
    with pytest.raises(ValueError):  # SettingsError is a ValueError too
        wbtool.Settings(quiet="maybe")


@pytest.mark.parametrize("beat", [0, -1, "0"])
def test_a_heartbeat_must_be_a_second_or_more(beat: object) -> None:
    """A run with a heartbeat of 0 or less reads as crashed while it runs."""
    with pytest.raises(SettingsError, match="heartbeat_seconds"):
        wbtool.Settings(heartbeat_seconds=beat)


@pytest.mark.parametrize("name", ["x_stats_cpu_count", "x_stats_cpu_logical_count",
                                  "x_stats_pid"])
@pytest.mark.parametrize("value", [0, -1, "-4"])
def test_cpu_counts_and_the_measured_pid_must_be_1_or_more(name: str, value: object) -> None:
    """A CPU count of -1 made the cpu metric negative; a pid of -1 measured nothing."""
    with pytest.raises(SettingsError, match=name):
        wbtool.Settings(**{name: value})
    assert getattr(wbtool.Settings(**{name: 3}), name) == 3


def test_a_negative_cpu_count_from_the_environment_is_one_line(cli: Cli) -> None:
    res = cli("run", "-q", "--", sys.executable, "-c", "pass",
              env={"WBTOOL_X_STATS_CPU_LOGICAL_COUNT": "-1"})
    assert res.code == 2 and res.err.count("\n") == 1
    assert res.err.startswith("wbtool: error: invalid setting 'x_stats_cpu_logical_count'")


def test_run_tags_from_the_environment_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    for value, tags in (("a,b", ("a", "b")), ('["a", "b,c"]', ("a", "b,c")), ("one", ("one",))):
        monkeypatch.setenv("WBTOOL_RUN_TAGS", value)
        assert load().run_tags == tags


def test_precedence(tmp_path: Path, store_dir: Path) -> None:
    system = tmp_path / "system.yaml"
    system.write_text("project: from-system\nentity: sys-entity\nquiet: true\n")
    store_dir.mkdir(parents=True)
    (store_dir / "settings.yaml").write_text("project: from-workspace\nrun_group: g\n")
    env = {"WBTOOL_DIR": str(store_dir), "WBTOOL_SETTINGS_SYSTEM": str(system),
           "WBTOOL_PROJECT": "from-env", "WBTOOL_RUN_GROUP": "env-group"}
    s = load(environ=env)
    assert s.project == "from-env" and s.source("project") == "env WBTOOL_PROJECT"
    assert s.entity == "sys-entity" and s.source("entity").startswith("system file")
    assert s.run_group == "env-group"
    assert s.quiet is True
    assert s.source("mode") == "default"
    s = load(wbtool.Settings(project="explicit"), environ=env)
    assert s.project == "explicit" and s.source("project") == "argument"
    del env["WBTOOL_PROJECT"]
    s = load(environ=env)
    assert s.project == "from-workspace" and s.source("project").startswith("workspace file")


def test_an_empty_variable_counts_as_unset(tmp_path: Path, store_dir: Path) -> None:
    """``WBTOOL_QUIET=$QUIET`` with QUIET unset in a CI script: no setting,
    so the files and defaults below it still apply."""
    store_dir.mkdir(parents=True)
    (store_dir / "settings.yaml").write_text("project: from-workspace\n")
    env = {"WBTOOL_DIR": str(store_dir), "WBTOOL_SETTINGS_SYSTEM": str(tmp_path / "none.yaml"),
           "WBTOOL_PROJECT": "", "WBTOOL_QUIET": "", "WBTOOL_X_STATS_SAMPLING_INTERVAL": ""}
    s = load(environ=env)
    assert s.project == "from-workspace" and s.source("project").startswith("workspace file")
    assert s.quiet is False and s.source("quiet") == "default"
    assert s.source("x_stats_sampling_interval") == "default"


def test_bad_values_in_files_and_env_name_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("heartbeat_seconds: often\n")
    with pytest.raises(SettingsError, match="heartbeat_seconds"):
        load(environ={"WBTOOL_SETTINGS_SYSTEM": str(bad)})
    with pytest.raises(SettingsError, match="x_disable_stats"):
        load(environ={"WBTOOL_X_DISABLE_STATS": "perhaps"})
    bad.write_text("unknown_thing: 1\n")
    with pytest.raises(SettingsError, match="unknown_thing"):
        load(environ={"WBTOOL_SETTINGS_SYSTEM": str(bad)})


def test_a_settings_file_that_is_not_yaml_is_told_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("project: p\nrun_tags: [a\n")
    with pytest.raises(SettingsError, match=r"not valid YAML: .*\(line 3, column 1\)$") as e:
        load(environ={"WBTOOL_SETTINGS_SYSTEM": str(bad)})
    assert "\n" not in str(e.value)


def test_a_settings_file_that_is_not_utf8_is_one_line(cli: Cli, tmp_path: Path,
                                                     store_dir: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_bytes(b"project: \xff\n")
    problem = "not UTF-8 text: byte 0xff (line 1, column 10)"
    with pytest.raises(SettingsError, match=re.escape(problem)):
        wbtool.init(settings=wbtool.Settings(settings_system=str(bad)))
    res = cli("runs", "list", env={"WBTOOL_SETTINGS_SYSTEM": str(bad)})
    assert (res.code, res.err) == (2, f"wbtool: error: settings file {bad} is {problem}\n")
    store_dir.mkdir(parents=True)
    (store_dir / "settings.yaml").write_bytes(b"project: \xff\n")
    res = cli("runs", "list")
    assert res.code == 2 and res.err == (
        f"wbtool: error: settings file {store_dir / 'settings.yaml'} is {problem}\n")


def _unreadable_settings(kind: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    """The environment that points wbtool at a settings file it cannot read,
    and the words that say why."""
    if kind == "store under a file":  # WBTOOL_ROOT_DIR names a file
        (tmp_path / "afile").write_text("mine")
        path = tmp_path / "afile" / ".wbtool" / "settings.yaml"
        return ({"WBTOOL_ROOT_DIR": str(tmp_path / "afile"), "WBTOOL_DIR": ""},
                f"cannot read settings file {path}: {tmp_path / 'afile'} is a file, "
                "not a folder")
    path = tmp_path / "s.yaml"
    env = {"WBTOOL_SETTINGS_SYSTEM": str(path)}
    if kind == "folder":
        path.mkdir()
        return env, f"settings file {path} is a folder, not a file"
    if kind == "symlink loop":
        (tmp_path / "other.yaml").symlink_to(path)
        path.symlink_to(tmp_path / "other.yaml")
        return env, f"cannot read settings file {path}: its symbolic links form a loop"
    if kind == "broken symlink":  # a link to a file moved or not made yet
        path.symlink_to(tmp_path / "moved.yaml")
        return env, (f"settings file {path} is a broken symbolic link "
                     f"(to {tmp_path / 'moved.yaml'})")
    if kind == "broken symlink folder":  # ~/.config/wbtool linked to dotfiles not there
        (tmp_path / "config").symlink_to("dotfiles", target_is_directory=True)
        path = tmp_path / "config" / "s.yaml"
        return ({"WBTOOL_SETTINGS_SYSTEM": str(path)},
                f"cannot read settings file {path}: {tmp_path / 'config'} is a broken "
                "symbolic link (to dotfiles)")
    if kind == "pipe":
        os.mkfifo(path)
        return env, f"settings file {path} is not a regular file"
    path.write_text("- project\n")
    return env, f"settings file {path} is not a mapping of setting: value"


@pytest.mark.parametrize("kind", ["store under a file", "folder", "symlink loop",
                                  "broken symlink", "broken symlink folder", "pipe", "list"])
@pytest.mark.parametrize("argv", [["runs", "list"], ["settings", "show"],
                                  ["artifact", "log", "ds", "data"]])
def test_a_settings_file_that_cannot_be_read_says_why(
    cli: Cli, tmp_path: Path, store_dir: Path, kind: str, argv: list[str]
) -> None:
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    env, words = _unreadable_settings(kind, tmp_path)
    res = cli(*argv, env=env)
    assert (res.code, res.err) == (2, f"wbtool: error: {words}\n")
    assert not store_dir.exists()
    if kind == "store under a file":
        assert (tmp_path / "afile").read_text() == "mine"
    with pytest.raises(SettingsError, match=re.escape(words)):
        load(environ={**os.environ, **env})


@pytest.mark.parametrize("argv", [["runs", "list"], ["settings", "show"],
                                  ["artifact", "log", "ds", "data"]])
def test_a_workspace_settings_file_or_store_that_is_a_broken_link_says_so(
    cli: Cli, tmp_path: Path, store_dir: Path, argv: list[str]
) -> None:
    """A store's settings file, or the store itself, linked to what is not
    there (yet) is refused in words rather than read as no settings, or as no
    store: whoever made the link expects what it leads to to apply."""
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    store_dir.mkdir(parents=True)
    path = store_dir / "settings.yaml"
    path.symlink_to("../shared/settings.yaml")
    res = cli(*argv)
    assert (res.code, res.err) == (2, f"wbtool: error: settings file {path} is a broken "
                                      "symbolic link (to ../shared/settings.yaml)\n")
    assert sorted(os.listdir(store_dir)) == ["settings.yaml"]
    path.unlink()
    store_dir.rmdir()
    store_dir.symlink_to(tmp_path / "unmounted" / ".wbtool", target_is_directory=True)
    res = cli(*argv)
    assert (res.code, res.err) == (
        2, f"wbtool: error: the wbtool store {store_dir} (from WBTOOL_DIR) is a broken "
           f"symbolic link (to {tmp_path / 'unmounted' / '.wbtool'})\n")
    assert not (tmp_path / "unmounted").exists()


def test_a_store_found_walking_up_that_is_a_broken_link_is_not_passed_by(
        tmp_path: Path) -> None:
    """A ``.wbtool`` link in a parent folder whose store is gone (an unmounted
    disk) is refused, instead of a new store made in the current folder."""
    store = tmp_path / "proj" / ".wbtool"
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    store.symlink_to(tmp_path / "unmounted", target_is_directory=True)
    (tmp_path / "proj" / "sub" / "f").write_bytes(b"x")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WBTOOL_")}
    for argv in (["artifact", "log", "a", "f", "--type", "data"], ["runs", "list"]):
        res = subprocess.run([sys.executable, "-m", "wbtool", *argv], capture_output=True,
                             text=True, cwd=tmp_path / "proj" / "sub", env=env, timeout=60)
        assert (res.returncode, res.stderr) == (
            2, f"wbtool: error: the wbtool store {store} (from walking up) is a broken "
               f"symbolic link (to {tmp_path / 'unmounted'})\n")
    assert sorted(os.listdir(tmp_path / "proj" / "sub")) == ["f"]


def test_a_settings_file_this_user_may_not_read_says_so(cli: Cli, tmp_path: Path,
                                                         store_dir: Path) -> None:
    prefix = unprivileged()
    path = store_dir / "settings.yaml"
    store_dir.mkdir(parents=True)
    path.write_text("project: p\n")
    path.chmod(0)
    res = subprocess.run([*prefix, sys.executable, "-m", "wbtool", "runs", "list"],
                         capture_output=True, text=True, cwd=cli.cwd, timeout=60)
    assert (res.returncode, res.stderr) == (
        2, f"wbtool: error: cannot read settings file {path}: permission denied\n")
    assert path.stat().st_mode & 0o777 == 0 and sorted(os.listdir(store_dir)) == ["settings.yaml"]


def test_frozen_copy() -> None:
    s = wbtool.Settings(project="p").frozen_copy()
    with pytest.raises(AttributeError):
        s.project = "q"


def test_the_reference_update_methods_take_each_layer(tmp_path: Path, store_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "system.yaml"
    system.write_text("entity: sys-entity\n")
    store_dir.mkdir(parents=True)
    (store_dir / "settings.yaml").write_text("run_group: from-workspace\n")
    monkeypatch.setenv("WBTOOL_DIR", str(store_dir))
    s = wbtool.Settings(settings_system=str(system))
    s.update_from_system_config_file()
    s.update_from_workspace_config_file()
    s.update_from_env_vars({"WBTOOL_PROJECT": "from-env", "WBTOOL_QUIET": "", "OTHER": "x"})
    s.update_from_system_environment()
    assert (s.entity, s.run_group, s.project) == ("sys-entity", "from-workspace", "from-env")
    assert s.source("run_group").startswith("workspace file") and s.quiet is False
    assert s.host and s.source("host") == "system environment"
    copy = wbtool.Settings(project="mine", mode="online")
    copy.update_from_settings(s)
    assert copy.project == "from-env" and copy.source("project") == "env WBTOOL_PROJECT"
    assert copy.mode == "online"
    with pytest.raises(SettingsError, match="HUGE"):
        s.update_from_env_vars({"WBTOOL_HEARTBEAT_SECONDS": "HUGE"})
    with pytest.raises(SettingsError, match=r"expected a wbtool\.Settings"):
        s.update_from_settings({"project": "p"})  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="frozen"):
        s.frozen_copy().update_from_env_vars({"WBTOOL_PROJECT": "q"})
    with pytest.raises(AttributeError, match="frozen"):
        s.frozen_copy().update_from_dict({"project": "q"})


def test_a_run_s_settings_name_its_folders(store_dir: Path) -> None:
    s = wbtool.Settings(project="p")
    assert s.wandb_dir == str(store_dir) and s.sync_dir is None and s.files_dir is None
    assert (s.run_mode, s.is_local, s.project_url, s.timespec) == ("offline-run", True, None,
                                                                   None)
    with wbtool.init(project="p", settings={"quiet": True, "console": "off"}) as run:
        st = run.settings
        assert st.run_id == run.id and st.files_dir == run.dir
        assert st.sync_dir == str(store_dir / "runs" / run.id)
        assert st.log_dir == str(store_dir / "logs")
        assert st.settings_workspace == str(store_dir / "settings.yaml")
        assert st.run_url == run.url and re.fullmatch(r"\d{8}_\d{6}", st.timespec or "")


def test_settings_pickle_and_copy_as_they_are(store_dir: Path) -> None:
    """pickle, copy and deepcopy failed with AttributeError: _frozen, so
    settings could not be handed to a worker process."""
    import copy
    import pickle

    s = wbtool.Settings(project="p", x_label="rank0")
    for other in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
        assert other == s and other.source("project") == "argument"
        other.project = "q"  # a copy of settings that can change can change
        assert s.project == "p"
    with wbtool.init(project="p", settings={"quiet": True, "console": "off"}) as run:
        st = pickle.loads(pickle.dumps(run.settings))
        assert st.run_id == run.id and st.files_dir == run.dir and st.timespec
        with pytest.raises(AttributeError, match="frozen"):
            st.project = "q"


def test_open_metrics_filters_from_the_environment() -> None:
    from wbtool.settings import load

    env = {"WBTOOL_X_STATS_OPEN_METRICS_FILTERS": '{"DCGM_.*": {"gpu": "0,1"}}'}
    assert load(environ=env).x_stats_open_metrics_filters == {"DCGM_.*": {"gpu": "0,1"}}
    env = {"WBTOOL_X_STATS_OPEN_METRICS_FILTERS": '["a{1,3}", "b"]'}
    assert load(environ=env).x_stats_open_metrics_filters == ("a{1,3}", "b")
    env = {"WBTOOL_X_STATS_OPEN_METRICS_FILTERS": "node_.*,gpu_.*"}
    assert load(environ=env).x_stats_open_metrics_filters == ("node_.*", "gpu_.*")


@pytest.mark.parametrize("name", ["config_paths", "ignore_globs", "x_stats_disk_paths"])
def test_lists_of_paths_and_globs_hold_strings(cli: Cli, name: str) -> None:
    assert getattr(wbtool.Settings(**{name: [Path("a"), "b"]}), name) == ("a", "b")
    with pytest.raises(SettingsError, match=name):
        wbtool.Settings(**{name: ["a", ["b"]]})
    res = cli("run", "--", sys.executable, "-c", "", env={f"WBTOOL_{name.upper()}": "[1]"})
    assert (res.code, res.err) == (
        2, f"wbtool: error: invalid setting {name!r}: '[1]': expected a list of strings\n")


def test_paths_starting_with_a_tilde_are_in_the_home_folder(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "conf.yaml").write_text("lr: 0.3\n")
    system = home / ".config" / "wbtool" / "settings.yaml"
    system.parent.mkdir(parents=True)
    system.write_text("config_paths: [~/conf.yaml]\ngit_root: ~/repo\n")
    shown: Any = cli("settings", "show", "config_paths", "git_root", "--json", check=True).json()
    assert shown["result"]["config_paths"]["value"] == [str(home / "conf.yaml")]
    assert shown["result"]["git_root"]["value"] == str(home / "repo")
    with wbtool.init(settings=wbtool.Settings(quiet=True)) as run:
        assert run.config["lr"] == 0.3


def test_only_upper_case_variables_are_settings(cli: Cli) -> None:
    env = {"WBTOOL_PROJECT": "upper", "WBTOOL_project": "lower", "WBTOOL_Run_Group": "g"}
    assert (load(environ=env).project, load(environ=env).run_group) == ("upper", None)
    res = cli("settings", "show", "project", "run_group", env=env, check=True)
    assert res.out == "project\t'upper'\tenv WBTOOL_PROJECT\nrun_group\tNone\tdefault\n"


def test_the_deprecated_boolean_reinit_means_what_the_reference_says() -> None:
    """False is "return_previous", so a notebook does not finish its run."""
    assert Settings(reinit=False).reinit == "return_previous"
    assert Settings(reinit=True).reinit == "finish_previous"


def test_a_store_path_that_is_a_file_is_told_in_words(cli: Cli, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a store\n")
    for args in (("artifact", "ls"), ("settings", "show"), ("runs", "list")):
        res = cli(*args, env={"WBTOOL_DIR": str(afile)})
        assert (res.code, res.err) == (
            2, f"wbtool: error: the wbtool store {afile} (from WBTOOL_DIR) is a file, "
               "not a folder\n"), args
    assert afile.read_text() == "not a store\n"


_SERVER_SETTINGS = """
import sys, wbtool
settings = wbtool.Settings(start_method="thread", init_timeout=300, api_key="k-0123456789abcdef")
settings.base_url = "https://example.invalid"
assert settings.start_method is None and "api_key" not in settings.explicit()
run = wbtool.init(project="p", settings=wbtool.Settings(start_method="fork"),
                  config={"lr": 0.1})
run.log({"loss": 1.0})
run.finish()
print(run.dir)
"""


def test_settings_that_mean_something_only_to_a_server_are_told_and_not_kept(
        tmp_path: Path) -> None:
    """A script written for the reference passes settings such as start_method
    or api_key: it runs, is told once per setting, and the key is kept nowhere."""
    env = {**os.environ, "WBTOOL_DIR": str(tmp_path / ".wbtool")}
    env.pop("WBTOOL_SILENT", None)
    done = subprocess.run([sys.executable, "-c", _SERVER_SETTINGS], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    told = [line for line in done.stderr.splitlines() if "only to a server" in line]
    assert len(told) == 4 and sum("'start_method'" in line for line in told) == 1
    assert all(line.startswith("wbtool: WARNING") for line in told)
    run_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("file://"))
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert b"k-0123456789abcdef" not in path.read_bytes(), path
    with pytest.raises(SettingsError, match="start_methd"):  # a misspelt one is still refused
        wbtool.Settings(start_methd="thread")
