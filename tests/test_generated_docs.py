"""The shell completions and man pages: generated from the app, in sync, and working."""

from __future__ import annotations

import enum
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_docs.py"
BASH = ROOT / "completions" / "wbtool.bash"
ZSH = ROOT / "completions" / "_wbtool"
FISH = ROOT / "completions" / "wbtool.fish"
MAN = ROOT / "man"


def _gen_docs(*args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _load_gen_docs(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import scripts/gen_docs.py without leaving a __pycache__ in the repository."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location("gen_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gen_docs", module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, cmd)]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        if not sub.hidden:
            found += _walk(sub, (*path, name))
    return found


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    """Every (command path, command) of the real app, wbtool itself included."""
    import typer.main

    from wbtool.cli.main import app

    return _walk(typer.main.get_command(app))


COMMAND_PATHS = [path for path, _ in _commands() if path]


def _man_text(page: Path) -> str:
    """A man page's source with roff's escaped hyphens turned back into plain ones."""
    return page.read_text(encoding="utf-8").replace("\\-", "-")


def _bash_complete(*words: str, cwd: Path) -> list[str]:
    """What the bash completion offers for a command line whose last word is being typed."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); '
              'COMPREPLY=(); _wbtool; printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", str(BASH),
                           *words], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [line for line in proc.stdout.splitlines() if line]


# -- in sync with the app -------------------------------------------------------------------

def test_committed_files_match_the_app() -> None:
    proc = _gen_docs("--check")
    assert proc.returncode == 0, (
        "completions/ or man/ are out of date; run `python scripts/gen_docs.py`\n" + proc.stderr)


def test_check_names_the_files_that_differ(tmp_path: Path) -> None:
    assert _gen_docs("--out", str(tmp_path)).returncode == 0
    assert _gen_docs("--check", "--out", str(tmp_path)).returncode == 0

    bash = tmp_path / "completions" / "wbtool.bash"
    bash.write_text(bash.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    (tmp_path / "man" / "wbtool.1").unlink()
    (tmp_path / "man" / "wbtool-gone.1").write_text(".TH GONE 1\n", encoding="utf-8")
    proc = _gen_docs("--check", "--out", str(tmp_path))
    assert proc.returncode == 1
    assert "completions/wbtool.bash: differs" in proc.stderr
    assert "man/wbtool.1: missing" in proc.stderr
    assert "man/wbtool-gone.1: no longer generated" in proc.stderr
    assert "completions/_wbtool" not in proc.stderr

    assert _gen_docs("--out", str(tmp_path)).returncode == 0  # repairs all three
    assert not (tmp_path / "man" / "wbtool-gone.1").exists()
    assert _gen_docs("--check", "--out", str(tmp_path)).returncode == 0


def test_output_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert _gen_docs("--out", str(first), seed="1").returncode == 0
    assert _gen_docs("--out", str(second), seed="2").returncode == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


# -- every command is covered ---------------------------------------------------------------

@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_every_command_is_in_the_completions(path: tuple[str, ...]) -> None:
    name = " ".join(("wbtool", *path))
    assert f'"{name}")' in BASH.read_text(encoding="utf-8")
    assert f"_wbtool_{'_'.join(path)}() {{" in ZSH.read_text(encoding="utf-8").replace("-", "_")
    at = " ".join(("__wbtool_at", *path[:-1]))
    line = re.compile(rf"^complete -c wbtool -n '{re.escape(at)}' -f -a {re.escape(path[-1])} ",
                      re.MULTILINE)
    assert line.search(FISH.read_text(encoding="utf-8")), f"{name} missing from wbtool.fish"


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_every_command_is_in_the_man_pages(path: tuple[str, ...]) -> None:
    main_page = _man_text(MAN / "wbtool.1")
    page = _man_text(MAN / f"wbtool-{path[0]}.1")
    if len(path) == 1:  # listed in wbtool(1), with a page of its own
        assert f".TP\n\\fB{path[0]}\\fR\n" in main_page
        assert f"\\fBwbtool-{path[0]}\\fR(1)" in main_page
        assert f"\n.SH NAME\nwbtool-{path[0]} - " in page
    else:  # a section of its top-level command's page
        assert f'\n.SS "{" ".join(("wbtool", *path))}"\n' in page


def test_every_option_is_completed_and_documented(tmp_path: Path) -> None:
    for path, cmd in _commands():
        spellings = {o for p in cmd.params if p.param_type_name == "option" and not p.hidden
                     for o in (*p.opts, *p.secondary_opts)}
        offered = set(_bash_complete("wbtool", *path, "-", cwd=tmp_path))
        assert spellings <= offered, (path, spellings - offered)
        if path:
            page = _man_text(MAN / f"wbtool-{path[0]}.1")
            for spelling in spellings:
                assert f"\\fB{spelling}\\fR" in page, (path, spelling)


# -- the scripts work -----------------------------------------------------------------------

def test_bash_accepts_the_completion_script() -> None:
    proc = subprocess.run(["bash", "-n", str(BASH)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bash_completes_commands_options_and_files(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "data.csv").write_text("x\n", encoding="utf-8")
    assert _bash_complete("wbtool", "ar", cwd=folder) == ["artifact"]
    subcommands = _bash_complete("wbtool", "artifact", "", cwd=folder)
    assert {"log", "add", "checkout", "alias"} <= set(subcommands)
    assert _bash_complete("wbtool", "artifact", "alias", "", cwd=folder) == ["add", "rm"]
    assert "--project" in _bash_complete("wbtool", "artifact", "log", "--p", cwd=folder)
    # Arguments complete file names, also after an option and its value.
    assert _bash_complete("wbtool", "artifact", "add", "-p", "proj", "mnist", "d",
                          cwd=folder) == ["data.csv"]
    # An option's value is not mistaken for a subcommand.
    assert _bash_complete("wbtool", "artifact", "ls", "--project", "alias", "",
                          cwd=folder) == ["data.csv"]


@pytest.mark.parametrize(("shell", "path"), [("zsh", ZSH), ("fish", FISH)])
def test_other_shells_accept_their_completion_script(shell: str, path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed, so its syntax check cannot run")
    proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_fish_completes_subcommands(tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed, so its completions cannot be exercised")
    proc = subprocess.run(
        ["fish", "--no-config", "-c",
         f"source {FISH}; complete -C 'wbtool artifact '; echo ==; complete -C 'wbtool artifact "
         "alias '"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    group, alias = proc.stdout.split("==\n")
    assert {"log", "add", "checkout"} <= {line.split("\t")[0] for line in group.splitlines()}
    assert [line.split("\t")[0] for line in alias.splitlines()] == ["add", "rm"]


def test_man_pages_render_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed, so the man pages cannot be rendered")
    pages = sorted(str(p) for p in MAN.glob("*.1"))
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", *pages],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_main_man_page_sections() -> None:
    text = _man_text(MAN / "wbtool.1")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", '"EXIT STATUS"',
                    "ENVIRONMENT", "FILES", '"SEE ALSO"'):
        assert f"\n.SH {section}\n" in text, section
    for code in ("0", "1", "2", "3", "4", "5", "6", "7", "130"):
        assert f".TP\n\\fB{code}\\fR\n" in text, code
    assert "WBTOOL_DIR" in text


# -- the generator on its own ---------------------------------------------------------------

def test_roff_escapes_control_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    roff = _load_gen_docs(monkeypatch).roff
    assert roff(".hidden") == "\\&.hidden"
    assert roff("'quoted") == "\\&'quoted"
    assert roff("a\\b") == "a\\eb"
    assert roff("--opt") == "\\-\\-opt"
    assert roff("one\n.two") == "one\n\\&.two"
    assert roff("wait…") == "wait\\[u2026]"


class _Format(str, enum.Enum):
    csv = "csv"
    json = "json"


def test_new_groups_and_commands_are_picked_up(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is tied to today's commands: a new group and a new leaf get covered."""
    import typer
    import typer.main

    app = typer.Typer()
    runs = typer.Typer(help="Tracked runs.")
    app.add_typer(runs, name="runs")

    @runs.command("export")
    def export(run_id: str = typer.Argument(..., help="Run ID."),
               fmt: _Format = typer.Option(_Format.csv, "--format", help="Output format."),
               every: int = typer.Option(1, "--every", help="Keep every Nth step.")) -> None:
        """Export a run's history."""

    @app.command()
    def gc(dry_run: bool = typer.Option(False, "--dry-run/--no-dry-run")) -> None:
        """Free unreferenced objects."""

    gen = _load_gen_docs(monkeypatch)
    files = gen.generate(gen.build_tree(typer.main.get_command(app)), "1.2.3")
    assert sorted(files) == ["completions/_wbtool", "completions/wbtool.bash",
                             "completions/wbtool.fish", "man/wbtool-gc.1", "man/wbtool-runs.1",
                             "man/wbtool.1"]
    bash = files["completions/wbtool.bash"]
    assert '"wbtool runs export")' in bash and '"wbtool gc")' in bash
    assert '"wbtool runs export --format") choices="csv json"' in bash
    assert "--dry-run --help --no-dry-run" in bash
    assert ".SS \"wbtool runs export\"" in files["man/wbtool-runs.1"]
    assert "1.2.3" in files["man/wbtool.1"]

    script = tmp_path / "wbtool.bash"
    script.write_text(bash, encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    proc = subprocess.run(
        ["bash", "--norc", "-c", 'source "$1"; COMP_WORDS=(wbtool runs export x --format "");'
         ' COMP_CWORD=5; _wbtool; echo "${COMPREPLY[*]}"', "bash", str(script)],
        capture_output=True, text=True)
    assert proc.stdout.strip() == "csv json"
