"""``wbtool runs`` through the real entry point, against a private store."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import wbtool
from tests.conftest import Cli, Result, is_error

QUIET = {"quiet": True, "console": "off"}


def make_run(project: str = "p", steps: int = 5, **kwargs: Any) -> Any:
    run = wbtool.init(project=project, settings=QUIET, **kwargs)
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 10, "phase": "train"})
    run.finish()
    return run


def history_file(store: Path, run_id: str) -> Path:
    return store / "runs" / run_id / "history.jsonl"


def envelope(res: Result, command: str) -> Any:
    assert res.code == 0, res.err
    doc = res.json()
    assert isinstance(doc, dict)
    assert doc["schema"] == 1 and doc["command"] == command
    return doc["result"]


def test_a_huge_bad_value_is_not_quoted_whole(cli: Cli, store_dir: Path) -> None:
    """A 100 KB bad value gives an error line that still says what was wrong
    (its start and end), not 100 KB of the value."""
    huge = "x" * 100_000
    for args in (["runs", "show", huge + "!"], ["runs", "history", "someid", "--format", huge],
                 ["artifact", "info", huge + "!"]):
        res = cli(*args)
        is_error(res, 2)
        assert len(res.err) < 2200 and "characters left out" in res.err, res.err[:300]


def test_an_empty_folder_lists_nothing_and_creates_no_store(cli: Cli, store_dir: Path) -> None:
    res = cli("runs", "list")
    assert res.code == 0 and res.out == ""
    assert envelope(cli("runs", "list", "--json"), "runs list") == []
    is_error(cli("runs", "show", "abc123"), 3, "run not found: abc123")
    assert not store_dir.exists()


def test_list_and_show(cli: Cli, store_dir: Path) -> None:
    a = make_run("p", config={"lr": 0.1, "opt": {"name": "adam"}}, tags=["base"],
                 group="g1", notes="first try")
    b = make_run("q", steps=3)

    plain = cli("runs", "list", check=True).out.splitlines()
    assert [ln.split("\t")[:4] for ln in plain] == [
        [b.id, b.name, "q", "finished"], [a.id, a.name, "p", "finished"]]  # newest first
    assert plain[1].split("\t")[6:] == ["0.4", "0.2"]  # acc and loss, the common metrics

    result = envelope(cli("runs", "list", "--json"), "runs list")
    assert [r["id"] for r in result] == [b.id, a.id]
    first = result[1]
    assert first["project"] == "p" and first["state"] == "finished"
    assert first["tags"] == ["base"] and first["group"] == "g1"
    assert first["summary"]["loss"] == pytest.approx(0.2)
    only_p = envelope(cli("runs", "list", "-p", "p", "--json"), "runs list")
    assert [r["id"] for r in only_p] == [a.id]
    assert envelope(cli("runs", "list", "--limit", "1", "--json"), "runs list")[0]["id"] == b.id
    assert envelope(cli("runs", "list", "--state", "failed", "--json"), "runs list") == []
    is_error(cli("runs", "list", "--state", "sleeping"), 2, "--state")

    doc = envelope(cli("runs", "show", a.id, "--json"), "runs show")
    assert doc["name"] == a.name and doc["project"] == "p" and doc["group"] == "g1"
    assert doc["notes"] == "first try" and doc["exit_code"] == 0
    assert doc["config"] == {"lr": 0.1, "opt": {"name": "adam"}}
    assert doc["metadata"]["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    loss = doc["charts"]["loss"]
    assert loss["count"] == 5 and loss["max"] == 1.0 and loss["last"] == pytest.approx(0.2)
    assert loss["points"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert "phase" not in doc["charts"]  # not a number

    text = cli("runs", "show", f"p/{a.id}", check=True).out
    assert f"{a.id}  {a.name}  (p, finished)" in text
    assert "opt.name: adam" in text and "tags: base" in text
    assert "loss  █▄▂▁▁  min 0.2  max 1  last 0.2  (5 points)" in text
    is_error(cli("runs", "show", f"q/{a.id}"), 3)  # wrong project
    is_error(cli("runs", "show", "a/b/c/d"), 2, "run path")


def test_a_limit_past_what_sqlite_counts_lists_every_run(cli: Cli, store_dir: Path) -> None:
    a, b = make_run(steps=1), make_run(steps=1)
    for limit in (str(2**63), "9" * 30):
        listed = envelope(cli("runs", "list", "--limit", limit, "--json"), "runs list")
        assert [r["id"] for r in listed] == [b.id, a.id]
    assert cli("runs", "list", "-n", str(2**63 - 1), check=True).out.count("\n") == 2


def test_show_charts_a_long_history_in_sixty_points(cli: Cli, store_dir: Path) -> None:
    run = make_run(steps=1)
    lines = [json.dumps({"loss": float(i), "_step": i}) for i in range(1000)]
    history_file(store_dir, run.id).write_text("\n".join(lines) + "\n")
    chart = envelope(cli("runs", "show", run.id, "--json"), "runs show")["charts"]["loss"]
    assert chart["count"] == 1000 and (chart["min"], chart["max"]) == (0.0, 999.0)
    points = chart["points"]
    assert len(points) == 60 and points == sorted(points)
    assert points[0] < 20 and points[-1] > 980
    (line,) = [ln for ln in cli("runs", "show", run.id, check=True).out.splitlines()
               if ln.startswith("  loss  ")]
    spark = line.split()[1]
    assert len(spark) == 60 and spark[0] == "▁" and spark[-1] == "█"
    assert list(spark) == sorted(spark)  # a straight line, evenly sampled


def test_show_skips_integers_a_chart_cannot_hold(cli: Cli, store_dir: Path) -> None:
    run = wbtool.init(project="p", settings=QUIET)
    for x in (1, 10**400, 3, 10**308):
        run.log({"x": x, "huge": -10**400})
    run.finish()
    doc = envelope(cli("runs", "show", run.id, "--json"), "runs show")
    assert doc["summary"]["x"] == 10**308 and "huge" not in doc["charts"]
    chart = doc["charts"]["x"]
    assert (chart["count"], chart["min"], chart["max"], chart["last"]) == (3, 1, 10**308, 10**308)
    res = cli("runs", "show", run.id)
    assert res.code == 0 and "Traceback" not in res.err
    assert "  x  " in res.out and "(3 points)" in res.out


def test_json_output_is_strict_json(cli: Cli, store_dir: Path) -> None:
    run = wbtool.init(project="p", settings=QUIET)
    run.log({"nan": float("nan"), "inf": float("inf"), "ninf": -float("inf"),
             "nested": {"x": [float("nan"), 1.5]}, "ok": 2.5})
    run.finish()

    def strict(res: Result) -> Any:
        assert res.code == 0, res.err
        return json.loads(res.out, parse_constant=lambda c: pytest.fail(f"bare {c}"))

    expected = {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity",
                "nested/x": ["NaN", 1.5], "ok": 2.5}
    show = strict(cli("runs", "show", run.id, "--json"))["result"]
    assert {k: show["summary"][k] for k in expected} == expected
    (listed,) = strict(cli("runs", "list", "--json"))["result"]
    assert {k: listed["summary"][k] for k in expected} == expected
    res = cli("runs", "history", run.id, "--format", "jsonl")  # the stored rows, as they are
    assert json.loads(res.out)["inf"] == float("inf")


def test_history_formats_keys_and_steps(cli: Cli, store_dir: Path) -> None:
    run = make_run(steps=5)
    path = history_file(store_dir, run.id)

    raw = cli("runs", "history", run.id, check=True).out
    assert raw == path.read_text()

    rows = list(csv.reader(io.StringIO(cli("runs", "history", run.id, "-f", "csv",
                                           check=True).out)))
    assert rows[0] == ["_step", "loss", "acc", "phase", "_runtime", "_timestamp"]
    assert [r[:4] for r in rows[1:3]] == [["0", "1.0", "0.0", "train"],
                                          ["1", "0.5", "0.1", "train"]]
    assert len(rows) == 6

    res = cli("runs", "history", run.id, "--keys", "acc,loss", "--format", "csv",
              "--min-step", "1", "--max-step", "3", check=True)
    assert res.out == "_step,acc,loss\n1,0.1,0.5\n2,0.2,0.3333333333333333\n"
    res = cli("runs", "history", run.id, "--keys", "loss", "--min-step", "3", check=True)
    assert [json.loads(ln) for ln in res.out.splitlines()] == [
        {"_step": 3, "loss": 0.25}, {"_step": 4, "loss": 0.2}]

    is_error(cli("runs", "history", run.id, "--keys", "nope"), 2, "'nope'", "loss")
    is_error(cli("runs", "history", run.id, "--keys", "loss,,acc"), 2, "--keys")
    is_error(cli("runs", "history", run.id, "--format", "xml"), 2, "--format", "csv, jsonl")
    is_error(cli("runs", "history", run.id, "--min-step", "3", "--max-step", "3"), 2)
    is_error(cli("runs", "history", "missing1"), 3, "missing1")


def test_history_tolerates_a_torn_last_line(cli: Cli, store_dir: Path) -> None:
    run = make_run(steps=3)
    path = history_file(store_dir, run.id)
    whole = path.read_text()
    with open(path, "a") as f:
        f.write('{"loss": 0.1, "acc": 0.')  # what a kill in mid-write leaves
    assert cli("runs", "history", run.id, check=True).out == whole
    out = cli("runs", "history", run.id, "-f", "csv", "-k", "loss", check=True).out
    assert out.splitlines()[1:] == ["0,1.0", "1,0.5", "2,0.3333333333333333"]
    chart = envelope(cli("runs", "show", run.id, "--json"), "runs show")["charts"]["loss"]
    assert chart["count"] == 3


def test_history_csv_writes_nested_values_as_json(cli: Cli, store_dir: Path) -> None:
    run = make_run(steps=1)
    history_file(store_dir, run.id).write_text(
        '{"x":0.25,"h":{"bins":[0.5,1.5]},"_step":0}\n{"x":NaN,"_step":1}\n')
    out = cli("runs", "history", run.id, "-f", "csv", "-k", "x,h", check=True).out
    assert list(csv.reader(io.StringIO(out))) == [
        ["_step", "x", "h"], ["0", "0.25", '{"bins":[0.5,1.5]}'], ["1", "nan", ""]]
    history_file(store_dir, run.id).write_text(
        '{"x":0.25,"_step":0}\n{"x":NaN,"_step":1}\n{"x":-Infinity,"_step":2}\n')
    out = cli("runs", "history", run.id, "-f", "csv", "-k", "x", check=True).out
    assert out == "_step,x\n0,0.25\n1,nan\n2,-inf\n"


def test_history_into_a_closed_pipe_exits_quietly(cli: Cli, store_dir: Path) -> None:
    run = make_run(steps=1)
    row = '{"loss":0.5,"acc":0.25,"_step":%d,"_runtime":1.5,"_timestamp":1700000000.5}\n'
    history_file(store_dir, run.id).write_text("".join(row % i for i in range(100_000)))
    for fmt in ("jsonl", "csv"):
        proc = subprocess.run(
            ["bash", "-c", f'"$1" -m wbtool runs history {run.id} -f {fmt} | head -n 2; '
             'exit "${PIPESTATUS[0]}"', "bash", sys.executable],
            cwd=cli.cwd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert len(proc.stdout.splitlines()) == 2


def test_system_keys_that_name_no_metric_are_a_usage_error(cli: Cli, store_dir: Path) -> None:
    """As in ``runs history``: --keys with only commas and blanks is a mistake,
    not a request for every metric (jsonl) or for none (csv)."""
    run = make_run(steps=1)
    (store_dir / "runs" / run.id / "system.jsonl").write_text(
        '{"cpu":1.5,"_timestamp":1.0,"_runtime":0.1}\n')
    for keys in ("", " ", ",", " , "):
        for fmt in ("csv", "jsonl"):
            is_error(cli("runs", "system", run.id, "--keys", keys, "-f", fmt), 2, "--keys")
    assert cli("runs", "system", run.id, "-k", "cpu,", check=True).out.splitlines() == [
        "_timestamp,_runtime,cpu", "1.0,0.1,1.5"]


def test_system_samples_of_labelled_processes_keep_their_label(cli: Cli,
                                                               store_dir: Path) -> None:
    """The processes of a shared run sample into one system.jsonl, each under
    its label: listings show the label, and charts draw one line per label."""
    run = make_run(steps=1)
    (store_dir / "runs" / run.id / "system.jsonl").write_text(
        '{"cpu":1.5,"_timestamp":1.0,"_runtime":0.1,"_label":"rank0"}\n'
        '{"cpu":50.0,"_timestamp":1.1,"_runtime":0.2,"_label":"rank1"}\n'
        '{"cpu":2.5,"_timestamp":2.0,"_runtime":1.1,"_label":"rank0"}\n')
    for args in ((), ("-k", "cpu")):
        assert cli("runs", "system", run.id, *args, check=True).out.splitlines() == [
            "_timestamp,_runtime,_label,cpu", "1.0,0.1,rank0,1.5", "1.1,0.2,rank1,50.0",
            "2.0,1.1,rank0,2.5"]
    out = cli("runs", "system", run.id, "-k", "cpu", "-f", "jsonl", check=True).out
    assert [json.loads(ln)["_label"] for ln in out.splitlines()] == ["rank0", "rank1", "rank0"]
    charts = envelope(cli("runs", "show", run.id, "--json"), "runs show")["system_charts"]
    assert {k: (c["count"], c["last"]) for k, c in charts.items()} == {
        "cpu (rank0)": (2, 2.5), "cpu (rank1)": (1, 50.0)}


def test_export_one_row_per_run(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    a = make_run("p", config={"lr": 0.1, "opt": {"name": "adam"}}, tags=["x", "y"])
    b = make_run("p", config={"lr": 0.01, "layers": [1, 2]})
    rows = list(csv.DictReader(io.StringIO(cli("runs", "export", check=True).out)))
    assert [r["id"] for r in rows] == [b.id, a.id]
    assert list(rows[0])[:8] == ["id", "name", "state", "project", "group", "tags",
                                 "created_at", "runtime"]
    assert rows[1]["config.opt.name"] == "adam" and rows[1]["tags"] == '["x","y"]'
    assert rows[0]["config.layers"] == "[1,2]" and rows[0]["config.opt.name"] == ""
    assert rows[1]["summary.loss"] == "0.2" and rows[1]["state"] == "finished"
    assert not any(k.startswith("summary._") for k in rows[0])

    out = tmp_path / "runs.jsonl"
    res = cli("runs", "export", "--format", "jsonl", "--output", str(out), check=True)
    assert res.out == "" and "2 run(s)" in res.err
    docs = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert docs[1]["config.lr"] == 0.1 and docs[1]["tags"] == ["x", "y"]
    assert docs[0]["config.layers"] == [1, 2]
    assert envelope(cli("runs", "list", "--json"), "runs list")  # nothing changed
    is_error(cli("runs", "export", "-f", "parquet"), 2, "--format")
    dash = cli("runs", "export", "-f", "jsonl", "-o", "-", check=True)  # "-" is stdout
    assert [json.loads(ln)["id"] for ln in dash.out.splitlines()] == [b.id, a.id]
    assert not (cli.cwd / "-").exists()
    is_error(cli("runs", "export", "-o", ""), 2, "--output needs a file name")


def test_export_csv_reads_back_tags_that_hold_commas(cli: Cli, store_dir: Path) -> None:
    """A tag may hold a comma: comma-joined, ``a,b`` and ``c`` read back as
    three tags. The tags cell is a JSON list, as the other list cells are."""
    a = make_run("p", tags=["a,b", "c", 'say "hi"'])
    b = make_run("p")
    rows = list(csv.DictReader(io.StringIO(cli("runs", "export", check=True).out)))
    assert {r["id"]: json.loads(r["tags"]) for r in rows} == {
        a.id: ["a,b", "c", 'say "hi"'], b.id: []}


def test_export_to_a_path_it_cannot_write_names_that_path(cli: Cli, tmp_path: Path) -> None:
    make_run("p")
    for target, problem in ((tmp_path / "no" / "runs.csv", "No such file or directory"),
                            (tmp_path, "Is a directory")):
        res = cli("runs", "export", "-o", str(target))
        assert (res.code, res.err) == (1, f"wbtool: error: cannot write {target}: {problem}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "work"]


def test_export_writes_through_a_pipe_or_a_link_and_never_replaces_it(
    cli: Cli, tmp_path: Path
) -> None:
    """A named pipe, a device or a symbolic link given as the output was
    replaced by a regular file (``-o /dev/null`` or ``-o /dev/stdout``, as
    root, replaced the device itself)."""
    make_run("p")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        res = cli("runs", "export", "-f", "jsonl", "-o", str(fifo))
        got, _ = reader.communicate(timeout=30)
    finally:
        reader.kill()
        reader.wait()
    assert res.code == 0, res.err
    assert os.path.exists(fifo) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [json.loads(ln)["project"] for ln in got.decode().splitlines()] == ["p"]
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    cli("runs", "export", "-o", str(link), check=True)
    assert link.is_symlink() and real.read_text().startswith("id,name,state,")


def test_export_never_writes_into_the_store(cli: Cli, store_dir: Path) -> None:
    """The index or a run's record named as the output (a slip of the tab key)
    would be replaced by a CSV: the store's own files are refused."""
    run = make_run("p")
    index = store_dir / "index.db"
    record = store_dir / "runs" / run.id / "run.json"
    kept = record.read_bytes()
    for target in (index, record, store_dir / "runs.csv", store_dir):
        is_error(cli("runs", "export", "-o", str(target)), 2, str(target),
                 "inside the wbtool store")
    link = store_dir.parent / "index-link.csv"
    link.symlink_to(index)
    is_error(cli("runs", "export", "-o", str(link)), 2, "inside the wbtool store")
    assert record.read_bytes() == kept
    assert index.read_bytes().startswith(b"SQLite format 3\x00")
    assert not (store_dir / "runs.csv").exists()
    assert envelope(cli("runs", "list", "--json"), "runs list")[0]["id"] == run.id


def test_delete(cli: Cli, store_dir: Path) -> None:
    a, b, c = make_run(), make_run(), make_run()
    res = cli("runs", "delete", a.id, input="")  # stdin is a pipe, not a terminal
    is_error(res, 2, "--yes")
    assert (store_dir / "runs" / a.id).is_dir()
    is_error(cli("runs", "delete", a.id, "nothere", "--yes"), 3, "nothere")
    assert (store_dir / "runs" / a.id).is_dir()  # every ID is checked first

    res = envelope(cli("runs", "delete", a.id, b.id, "--yes", "--json"), "runs delete")
    assert res == {"deleted": [a.id, b.id]}
    assert not (store_dir / "runs" / a.id).exists()
    assert [r["id"] for r in envelope(cli("runs", "list", "--json"), "runs list")] == [c.id]
    is_error(cli("runs", "delete", a.id, "--yes"), 3)
    assert cli("runs", "delete", c.id, "-y", check=True).out == f"deleted run {c.id} ({c.name})\n"


def test_deleting_a_copied_run_folder_deletes_that_folder_only(cli: Cli, store_dir: Path) -> None:
    """A folder the index does not list, holding a copy of another run's
    run.json (a backup put back by hand), is deleted by its own name: the
    run it was copied from stays."""
    import shutil

    run = make_run()
    shutil.copytree(store_dir / "runs" / run.id, store_dir / "runs" / "copy1")
    assert envelope(cli("runs", "show", "copy1", "--json"), "runs show")["id"] == "copy1"
    res = envelope(cli("runs", "delete", "copy1", "--yes", "--json"), "runs delete")
    assert res == {"deleted": ["copy1"]}
    assert not (store_dir / "runs" / "copy1").exists()
    assert (store_dir / "runs" / run.id / "run.json").is_file()
    assert [r["id"] for r in envelope(cli("runs", "list", "--json"), "runs list")] == [run.id]


DAMAGED = {"garbage": b"garbage\n", "truncated": b'{"id": "abc", "proj', "empty": b"",
           "notrecord": b"{}", "missing": None}


def test_a_run_folder_whose_run_json_is_damaged_is_named_and_deleted(
        cli: Cli, store_dir: Path) -> None:
    """A run folder the index does not list (an index put back from a backup)
    whose run.json is damaged or missing: show says so, naming the file (exit
    7); list leaves it out with a warning; delete removes it."""
    import shutil
    import sqlite3

    run = make_run()
    runs = store_dir / "runs"
    for name, text in DAMAGED.items():
        shutil.copytree(runs / run.id, runs / name)
        if text is None:
            (runs / name / "run.json").unlink()
        else:
            (runs / name / "run.json").write_bytes(text)
        os.utime(runs / name, (1e9, 1e9))  # long ago, not a run being created
    db = sqlite3.connect(store_dir / "index.db")
    with db:
        db.execute("DELETE FROM runs WHERE id = ?", (run.id,))
    db.close()
    (runs / run.id / "run.json").write_bytes(b"\x00" * 10)  # no longer listed, damaged too
    os.utime(runs / run.id, (1e9, 1e9))
    (runs / "newborn").mkdir()  # a run being created: no run.json yet

    for name in [*DAMAGED, run.id]:
        what = "is missing" if name == "missing" else "is damaged"
        for args in (["show", name], ["show", f"p/{name}", "--json"], ["history", name]):
            is_error(cli("runs", *args), 7, f"{runs / name / 'run.json'} {what}",
                     f"`wbtool runs delete {name} --yes`")
    res = cli("runs", "list")
    assert res.code == 0 and res.out == ""
    shown = sorted([*DAMAGED, run.id])
    assert res.err.splitlines() == [
        f"wbtool: warning: 6 run folder(s) not listed: their run.json is missing or damaged: "
        f"{', '.join(shown[:5])} and 1 more; `wbtool runs delete ID --yes` removes one",
        "no runs"]
    assert envelope(cli("runs", "list", "--json"), "runs list") == []

    res = envelope(cli("runs", "delete", "garbage", "missing", "--yes", "--json"),
                   "runs delete")
    assert res == {"deleted": ["garbage", "missing"], "damaged": ["garbage", "missing"]}
    res = cli("runs", "delete", run.id, "empty", "-y", check=True)
    assert res.out.splitlines() == [
        f"deleted run {name} (its folder: its run.json was missing or damaged)"
        for name in (run.id, "empty")]
    assert sorted(p.name for p in runs.iterdir()) == ["newborn", "notrecord", "truncated"]
    is_error(cli("runs", "delete", "garbage", "--yes"), 3, "run not found: garbage")


def test_a_listed_run_whose_run_json_is_damaged_is_named_not_shown(
        cli: Cli, store_dir: Path) -> None:
    """A run the index still lists whose run.json is damaged (truncated, not
    JSON, not an object) or missing: ``runs show`` showed it from the index
    (exit 0) while ``doctor`` failed on it; now show, history and ``wbtool
    log`` name the file (exit 7), list still lists every run, delete removes it."""
    other, run = make_run(), make_run()
    runs = store_dir / "runs"
    for name, text in {**DAMAGED, "array": b"[]"}.items():
        if text is None:
            (runs / run.id / "run.json").unlink()
        else:
            (runs / run.id / "run.json").write_bytes(text)
        what = "is missing" if name == "missing" else "is damaged"
        for args in (["runs", "show", run.id], ["runs", "show", f"p/{run.id}", "--json"],
                     ["runs", "history", run.id], ["log", "--run", run.id, "a=1"]):
            is_error(cli(*args), 7, f"{runs / run.id / 'run.json'} {what}",
                     f"`wbtool runs delete {run.id} --yes` removes")
    assert envelope(cli("runs", "show", other.id, "--json"), "runs show")["id"] == other.id
    listed = envelope(cli("runs", "list", "--json"), "runs list")
    assert sorted(r["id"] for r in listed) == sorted([other.id, run.id])
    rows = [json.loads(line) for line in history_file(store_dir, run.id).read_text().splitlines()]
    assert len(rows) == 5 and all("a" not in r for r in rows)  # nothing was logged

    res = envelope(cli("runs", "delete", run.id, "--yes", "--json"), "runs delete")
    assert res == {"deleted": [run.id]}
    assert not (runs / run.id).exists()
    assert [r["id"] for r in envelope(cli("runs", "list", "--json"), "runs list")] == [other.id]


def test_the_question_before_deleting_goes_to_the_terminal(cli: Cli, store_dir: Path) -> None:
    """``wbtool runs delete ID --json | jq``: stdout holds the JSON document only."""
    run = make_run()
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "wbtool", "runs", "delete", run.id,
                                 "--json"], stdin=follower, stderr=follower,
                                stdout=subprocess.PIPE, cwd=cli.cwd)
        os.close(follower)
        os.write(leader, b"y\n")
        out = proc.communicate(timeout=60)[0]
        asked = os.read(leader, 65536)
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert json.loads(out)["result"] == {"deleted": [run.id]}
    assert b"Delete 1 run(s)" in asked
    assert not (store_dir / "runs" / run.id).exists()


CHILD = """
import sys, time, wbtool
run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
for i in range(10):
    run.log({"loss": 1.0 / (i + 1)})
print(run.id, flush=True)
time.sleep(120)
"""


def test_a_killed_run_reads_as_crashed(cli: Cli, store_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert envelope(cli("runs", "list", "--json"), "runs list")[0]["state"] == "running"
        is_error(cli("runs", "delete", run_id, "--yes"), 5, "running", "--force")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    listed = envelope(cli("runs", "list", "--json"), "runs list")
    assert [(r["id"], r["state"]) for r in listed] == [(run_id, "crashed")]
    assert cli("runs", "list", "--state", "crashed", check=True).out.startswith(run_id)
    assert envelope(cli("runs", "show", run_id, "--json"), "runs show")["state"] == "crashed"
    cli("runs", "delete", run_id, "--yes", check=True)


def test_diff_lists_what_differs_between_two_runs(cli: Cli, store_dir: Path) -> None:
    a = make_run(config={"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}, "seed": 1,
                         "flag": 1, "gone": float("nan")}, steps=2)
    b = wbtool.init(project="p", settings=QUIET, config={
        "lr": 0.01, "opt": {"name": "adam"}, "seed": 1.0, "flag": True, "gone": float("nan"),
        "new": "x"})
    b.log({"loss": 0.25, "acc": 0.1, "phase": "train"})
    b.finish(exit_code=2)
    out = cli("runs", "diff", a.id, f"p/{b.id}", check=True).out
    assert [ln.split("\t") for ln in out.splitlines()] == [
        ["state", "finished", "failed"], ["exit_code", "0", "2"],
        ["config.flag", "1", "True"],  # True is not 1
        ["config.lr", "0.1", "0.01"], ["config.new", "", "x"], ["config.opt.beta", "0.9", ""],
        ["summary.loss", "0.5", "0.25"]]
    doc = envelope(cli("runs", "diff", a.id, b.id, "--json"), "runs diff")
    assert (doc["a"], doc["b"]) == (a.id, b.id)
    keys = {d["key"]: d for d in doc["keys"]}
    assert keys["config.new"] == {"key": "config.new", "b": "x", "same": False}
    assert keys["summary.loss"] == {"key": "summary.loss", "a": 0.5, "b": 0.25, "same": False}
    every = envelope(cli("runs", "diff", a.id, b.id, "--all", "--json"), "runs diff")["keys"]
    same = {d["key"] for d in every if d["same"]}
    assert {"config.seed", "config.gone", "config.opt.name", "summary.acc",
            "summary.phase"} <= same  # 1 equals 1.0, NaN equals NaN
    assert cli("runs", "diff", a.id, a.id, check=True).out == "no differences\n"
    is_error(cli("runs", "diff", a.id, "nope"), 3, "nope")


def test_list_filters_and_sorts_by_config_summary_and_fields(cli: Cli, store_dir: Path) -> None:
    made = {}
    for i, (lr, acc, tags, group) in enumerate([
            (0.1, 0.8, ["a"], "g1"), (0.01, 0.9, ["a", "best"], "g1"),
            (0.001, None, ["b"], "g2"), (0.05, float("nan"), [], None)]):
        run = wbtool.init(project="p", name=f"run{i}", tags=tags, group=group, settings=QUIET,
                          config={"lr": lr, "opt": "adam" if i % 2 else "sgd"})
        run.log({"loss": i, **({"acc": acc} if acc is not None else {})})
        run.finish()
        made[run.id] = i

    def listed(*args: str) -> list[int]:
        doc = envelope(cli("runs", "list", *args, "--json"), "runs list")
        return [made[r["id"]] for r in doc]

    # the largest first; runs without the metric (or NaN) last, either way
    assert listed("--sort", "-summary.acc")[:2] == [1, 0]
    assert set(listed("--sort", "-summary.acc")[2:]) == {2, 3}
    assert listed("--sort", "summary.acc")[:2] == [0, 1]
    assert listed("--sort", "-summary.acc", "-n", "1") == [1]
    assert listed("--sort", "config.lr") == [2, 1, 3, 0]
    assert sorted(listed("--where", "config.lr<0.05")) == [1, 2]
    assert listed("-w", "config.opt=adam", "--tag", "a") == [1]
    assert sorted(listed("--tag", "a")) == [0, 1] and listed("--tag", "a", "--tag", "b") == []
    assert listed("--group", "g1", "--sort", "config.lr") == [1, 0]
    assert sorted(listed("-w", "name~run[12]")) == [1, 2]
    assert sorted(listed("-w", "tags~^(b|be)")) == [1, 2]  # a list: any of its items
    assert sorted(listed("-w", "summary.acc >= 0.85")) == [1]
    assert sorted(listed("-w", "state=finished", "-w", 'config.opt!="sgd"')) == [1, 3]
    # the metric sorted by is a column of the plain listing, first
    lines = cli("runs", "list", "--sort", "-summary.acc", "-n", "1", check=True).out
    assert lines.split("\t")[-2:] == ["0.9", "1\n"]
    for args, words in ((["-w", "lr"], "--where needs KEY OP VALUE"),
                        (["-w", "name~("], "bad $regex"),
                        (["--sort", "-"], "--sort needs a KEY")):
        is_error(cli("runs", "list", *args), 2, words)


def test_list_where_refuses_a_mistyped_operator_rather_than_matching_nothing(
    cli: Cli, store_dir: Path
) -> None:
    """``summary.acc=>0.9`` (for ``>=``) would compare acc with the text
    '>0.9' and list no run, as if none were good enough: it is refused in
    one line, as is an ordering with no value; text that starts so is still
    found when quoted as JSON."""
    run = wbtool.init(project="p", name="<odd>", settings=QUIET, config={"lr": 0.1})
    run.log({"acc": 0.95})
    run.finish()
    for where in ("summary.acc=>0.9", "summary.acc=<1", "config.lr<<1", "config.lr!=>0",
                  "config.lr<", "config.lr >= "):
        is_error(cli("runs", "list", "-w", where), 2, "--where", repr(where))
    found = envelope(cli("runs", "list", "-w", 'name="<odd>"', "--json"), "runs list")
    assert [r["id"] for r in found] == [run.id]
    found = envelope(cli("runs", "list", "-w", "summary.acc>=0.9", "--json"), "runs list")
    assert [r["id"] for r in found] == [run.id]


def test_list_where_finds_metrics_logged_with_slashes_and_shows_them(cli: Cli) -> None:
    """``--where summary.train.loss<1`` finds a run that logged ``train/loss``
    (as ``summary.train/loss`` does), and the column shown is that metric."""
    made = {}
    for name, data in (("flat", {"train/loss": 0.5}), ("nested", {"train": {"loss": 0.25}}),
                       ("dots", {"train.loss": 0.75}), ("big", {"train/loss": 5.0})):
        run = wbtool.init(project="p", name=name, settings=QUIET)
        run.log(data)
        run.finish()
        made[run.id] = name

    def listed(*args: str) -> set[str]:
        return {made[r["id"]] for r in envelope(cli("runs", "list", *args, "--json"),
                                                "runs list")}

    assert listed("-w", "summary.train.loss<1") == {"flat", "nested", "dots"}
    assert listed("-w", "summary.train/loss < 1") == {"flat", "nested"}
    out = cli("runs", "list", "-w", "summary.train.loss<0.6", "--sort", "summary.train.loss",
              check=True).out.splitlines()
    # id, name, project, state, started, runtime, then the one metric (no empty train.loss)
    assert [ln.split("\t")[6:] for ln in out] == [["0.25"], ["0.5"]]
