"""Runs in real child processes: exit paths, signals, crashes, secrets."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import Cli
from wbtool.runs.folder import effective_state
from wbtool.runs.history import iter_rows


def child(code: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )


def run_dir(store: Path) -> Path:
    (folder,) = (store / "runs").iterdir()
    return folder


def record(store: Path) -> dict:
    return json.loads((run_dir(store) / "run.json").read_text())


def rows(store: Path) -> list[dict]:
    return list(iter_rows(run_dir(store) / "history.jsonl"))


PRELUDE = """
import os, sys, time, wbtool
run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
"""


@pytest.mark.parametrize(("tail", "state", "codes", "exit_code"), [
    ("pass", "finished", {0}, 0),
    ("raise RuntimeError('boom')", "failed", {1}, 1),
    ("sys.exit(3)", "failed", {3}, 3),
    # Python may end an uncaught Ctrl-C with status 1 or by SIGINT itself.
    ("raise KeyboardInterrupt", "killed", {1, -signal.SIGINT}, 130),
])
def test_exit_paths_finish_the_run(store_dir: Path, tail: str, state: str, codes: set[int],
                                   exit_code: int) -> None:
    proc = child(PRELUDE + "for i in range(100):\n    run.log({'i': i})\n" + tail)
    proc.communicate(timeout=60)
    assert proc.returncode in codes
    doc = record(store_dir)
    assert doc["state"] == state and doc["exit_code"] == exit_code
    assert [r["i"] for r in rows(store_dir)] == list(range(100))


def test_the_error_that_ends_a_with_block_is_in_the_console_log(store_dir: Path) -> None:
    """Python prints the traceback after the block, when the run has stopped
    capturing the console: the log of the failed run did not say why."""
    proc = child("""
        import wbtool
        with wbtool.init(project="p", settings={"quiet": True, "console": "wrap"}) as run:
            print("epoch 1")
            raise ValueError("bad batch")
    """)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.count("ValueError: bad batch") == 1
    log = (run_dir(store_dir) / "output.log").read_text()
    assert log.startswith("epoch 1\n") and log.endswith("ValueError: bad batch\n")
    assert "Traceback (most recent call last):" in log and record(store_dir)["state"] == "failed"


@pytest.mark.parametrize(("code", "status"), [
    ("0", 0), ("None", 0), ("4", 4), ("256", 0), ("-1", 255), ("10**21", 255), ("'bye'", 1),
])
@pytest.mark.parametrize("inside_with", [True, False], ids=["with", "plain"])
def test_sys_exit_records_the_status_the_process_exits_with(
        store_dir: Path, code: str, status: int, inside_with: bool) -> None:
    body = (f"with run:\n    run.log({{'i': 1}})\n    sys.exit({code})" if inside_with
            else f"run.log({{'i': 1}})\nsys.exit({code})")
    proc = child(PRELUDE + body)
    proc.communicate(timeout=60)
    assert proc.returncode == status
    doc = record(store_dir)
    assert (doc["state"], doc["exit_code"]) == ("finished" if status == 0 else "failed", status)


def test_sigterm_finishes_as_killed_and_loses_nothing(store_dir: Path) -> None:
    proc = child(PRELUDE + """
for i in range(500):
    run.log({'i': i})
print("logged", flush=True)
time.sleep(60)
""")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "logged"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    doc = record(store_dir)
    assert doc["state"] == "killed" and doc["exit_code"] == 128 + signal.SIGTERM
    assert len(rows(store_dir)) == 500


def test_sigkill_two_seconds_after_the_last_log_loses_nothing(store_dir: Path) -> None:
    proc = child(PRELUDE + """
for i in range(2000):
    run.log({'i': i, 'x': i * 0.5})
print("logged", flush=True)
time.sleep(60)
""")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "logged"
    time.sleep(2.0)
    proc.kill()
    proc.wait(timeout=30)
    assert [r["i"] for r in rows(store_dir)] == list(range(2000))
    doc = record(store_dir)
    assert doc["state"] == "running"  # as recorded: the process never finished
    assert effective_state(doc) == "crashed"  # … and readers see it died


FORKED_CHILD = """
run.log({"a": 1})
pid = os.fork()
if pid == 0:  # a multiprocessing worker, say, with a copy of the parent's run
    run.log({"b": 1})
    wbtool.log({"b": 2})
    run.alert("from the child", "what writes to the store still does")
    run.finish()
    sys.exit(0)
os.waitpid(pid, 0)
print(open(os.path.join(run.settings.sync_dir, "run.json")).read())
run.log({"a": 2})
"""


def test_a_forked_child_leaves_its_parent_s_run_to_the_parent(store_dir: Path) -> None:
    """The child wrote the rows its parent had not yet written a second time,
    with rows of its own, and its finish (or its exit) ended the run under
    the parent."""
    proc = child(PRELUDE + FORKED_CHILD)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "running"  # as the parent saw it after the child
    assert [(r["_step"], r.get("a"), r.get("b")) for r in rows(store_dir)] == [
        (0, 1, None), (1, 2, None)]
    assert record(store_dir)["state"] == "finished"
    assert err.count("run.log ignored: run ") == 2 and "run.finish ignored" in err
    assert "call wbtool.init() in this process" in err
    assert "ALERT [INFO] from the child" in err


def test_a_forked_child_does_not_hold_up_its_parent_s_finish(store_dir: Path) -> None:
    """A child forked once the history is written by the helper process
    (a fast loop) inherits the pipe to it; the parent's finish, which waits
    for the helper to reach the end of that pipe, must not wait for the
    child to exit."""
    proc = child(PRELUDE + """
for i in range(10000):
    run.log({"i": i})
run._flush()  # one large flush: the helper takes over
assert run._history._encoder is not None
pid = os.fork()
if pid == 0:  # a worker that outlives the parent's training loop
    time.sleep(60)
    os._exit(0)
run.log({"i": 10000})
started = time.monotonic()
run.finish()
print(round(time.monotonic() - started, 1), flush=True)
os.kill(pid, 9)
os.waitpid(pid, 0)
""")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert float(out) < 20
    assert [r["i"] for r in rows(store_dir)] == list(range(10001))


def test_finish_does_not_wait_on_a_writer_that_waits_on_it(store_dir: Path) -> None:
    """The row finish commits (one logged with commit=False, or with step=)
    can be the one that makes a fast loop wait for the writer to catch up;
    finish then holds the run's lock, which the writer's heartbeat needs
    once its slow flush (here: the history helper stopped for a second) is
    done. It used to wait for the writer for good."""
    proc = child("""
import os, signal, sys, threading, time, wbtool
run = wbtool.init(project="p", settings={"quiet": True, "console": "off",
                                         "heartbeat_seconds": 1})
for i in range(10000):
    run.log({"i": i})
run._flush()  # one large flush: the helper takes over
helper = run._history._encoder.proc.pid
os.kill(helper, signal.SIGSTOP)
pad = "x" * 200
for i in range(10000, 30000):  # more than the pipe holds: the writer's flush waits
    run.log({"i": i, "pad": pad})
deadline = time.monotonic() + 30
seen = None
while True:  # the writer is stuck handing rows over
    since = run._history._sending_since
    if since is not None and since == seen:
        break
    seen = since
    assert time.monotonic() < deadline, "the writer never took the rows"
    time.sleep(0.5)
end = 30000 + 20479 - run._history.pending  # the row finish commits is the 20480th waiting
for i in range(30000, end):
    run.log({"i": i})
run.log({"i": end}, commit=False)
time.sleep(0.6)  # the oldest waiting row is older than MAX_LAG_SECONDS
threading.Timer(1.0, os.kill, (helper, signal.SIGCONT)).start()
run.finish()
print(end, flush=True)
""")
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert [r["i"] for r in rows(store_dir)] == list(range(int(out) + 1))


def test_heartbeat_decides_for_runs_of_other_hosts() -> None:
    now = time.time()
    doc = {"state": "running", "host": "elsewhere", "pid": 1, "heartbeat_seconds": 30}
    assert effective_state({**doc, "heartbeat_at": now - 10}, now) == "running"
    assert effective_state({**doc, "heartbeat_at": now - 61}, now) == "crashed"
    assert effective_state({**doc, "state": "finished", "heartbeat_at": 0}, now) == "finished"


def test_heartbeat_is_written_while_running(store_dir: Path) -> None:
    proc = child("""
import time, wbtool
run = wbtool.init(settings={"quiet": True, "console": "off", "heartbeat_seconds": 1})
run.log({"a": 1})
print("started", flush=True)
time.sleep(3.5)
run.finish()
""")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    first = record(store_dir)["heartbeat_at"]
    time.sleep(2.5)
    second = record(store_dir)["heartbeat_at"]
    proc.wait(timeout=30)
    assert second > first


def test_secrets_never_reach_the_run_folder(store_dir: Path) -> None:
    secret_env = "s3cr3t-env-value-8731"
    secret_cfg = "s3cr3t-config-value-1234"
    secret_arg = "s3cr3t-arg-value-5678"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
import wbtool
run = wbtool.init(config={{"lr": 0.1, "db_password": "{secret_cfg}",
                          "nested": {{"api_key": "{secret_cfg}"}}}},
                  settings={{"quiet": True, "console": "off"}})
run.log({{"loss": 1.0}})
run.finish()
"""), "--api-token", secret_arg],
        env={**os.environ, "MY_SERVICE_API_KEY": secret_env, "HF_TOKEN": secret_env},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    folder = run_dir(store_dir)
    blob = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert b"lr" in blob  # the config was written …
    for secret in (secret_env, secret_cfg, secret_arg):
        assert secret.encode() not in blob  # … without any secret
    meta = json.loads((folder / "metadata.json").read_text())
    assert "MY_SERVICE_API_KEY" in meta["env"]
    index = (store_dir / "index.db").read_bytes()
    wal = store_dir / "index.db-wal"
    if wal.exists():
        index += wal.read_bytes()
    assert secret_cfg.encode() not in index


def test_processes_build_one_artifact_with_upsert_and_finish(store_dir: Path,
                                                             tmp_path: Path) -> None:
    script = """
import sys, pathlib, wbtool
rank = int(sys.argv[1])
d = pathlib.Path(f"part{rank}")
d.mkdir()
(d / f"shard{rank}.bin").write_bytes(bytes([rank]) * 100)
run = wbtool.init(project="p", group="g1", settings={"quiet": True, "console": "off"})
art = wbtool.Artifact("shards", "dataset")
art.add_dir(str(d))
if rank == 0:
    print(run.finish_artifact(art).version)
else:
    run.upsert_artifact(art)
run.finish()
"""
    for rank in (1, 2):
        subprocess.run([sys.executable, "-c", script, str(rank)], check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", script, "0"], check=True, timeout=60,
                         capture_output=True, text=True).stdout
    assert out.strip() == "v0"
    import wbtool

    art = wbtool.Api().artifact("p/shards:v0")
    assert sorted(e.path for e in art.manifest) == ["shard0.bin", "shard1.bin", "shard2.bin"]


SHARED = """
import sys, wbtool
rank = int(sys.argv[1])
kw = {"project": "p"} if rank == 0 else {}  # secondaries take the primary's project
run = wbtool.init(id="ddp1", mode="shared", tags=[f"r{rank}"], config={f"c{rank}": rank},
                  settings={"quiet": True, "console": "off", "x_primary": rank == 0,
                            "x_label": f"rank{rank}"}, **kw)
for i in range(50):
    run.log({f"loss{rank}": i})
run.summary[f"best{rank}"] = rank
if rank == 0:
    sys.stdin.readline()  # the secondaries are done
run.finish()
"""


def test_processes_of_a_shared_run_write_one_run(store_dir: Path) -> None:
    """mode="shared": secondaries (x_primary=False) started before their
    primary wait for it and join its run, instead of failing on the id."""
    secondaries = [subprocess.Popen([sys.executable, "-c", SHARED, str(rank)])
                   for rank in (1, 2)]
    time.sleep(0.5)
    primary = subprocess.Popen([sys.executable, "-c", SHARED, "0"], stdin=subprocess.PIPE,
                               text=True)
    for proc in secondaries:
        assert proc.wait(timeout=60) == 0
    primary.communicate("done\n", timeout=60)
    assert primary.returncode == 0
    doc = record(store_dir)
    assert (doc["id"], doc["project"], doc["state"], doc["exit_code"]) == ("ddp1", "p",
                                                                         "finished", 0)
    assert sorted(doc["tags"]) == ["r0", "r1", "r2"]
    history = rows(store_dir)
    assert len(history) == 150
    for rank in range(3):
        assert [r[f"loss{rank}"] for r in history if f"loss{rank}" in r] == list(range(50))
    folder = run_dir(store_dir)
    summary = json.loads((folder / "summary.json").read_text())
    assert {summary[f"best{r}"] for r in range(3)} == {0, 1, 2}
    import yaml

    assert yaml.safe_load((folder / "config.yaml").read_text()) == {"c0": 0, "c1": 1, "c2": 2}
    states = [e for e in map(json.loads, (folder / "events.jsonl").read_text().splitlines())
              if e.get("type") == "state" and e.get("state") != "running"]
    assert [e["state"] for e in states] == ["finished"]  # the primary's alone


def test_a_secondary_of_a_shared_run_needs_an_id_and_its_primary(
        store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wbtool
    from wbtool.runs import init

    secondary = {"quiet": True, "console": "off", "x_primary": False}
    with pytest.raises(wbtool.WbtoolError, match="needs the id of the run to join"):
        wbtool.init(mode="shared", settings=secondary)
    monkeypatch.setattr(init, "SHARED_WAIT_SECONDS", 0.3)
    with pytest.raises(wbtool.WbtoolError, match=r"did not start it within 0\.3 s.*: gone"):
        wbtool.init(mode="shared", id="gone", settings=secondary)
    assert not (store_dir / "runs" / "gone").exists()


def test_a_secondary_waits_for_an_ended_shared_run_to_be_resumed(
        store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secondary of a shared run that has ended (a job run again with the
    same id) waits for its primary to resume it, which may take a while (a
    checkpoint to load), and joins it; with none, it says the run ended."""
    import wbtool
    from wbtool.runs import init

    quiet = {"quiet": True, "console": "off"}
    wbtool.init(id="over", project="p", mode="shared", settings=quiet).finish()
    monkeypatch.setattr(init, "SHARED_WAIT_SECONDS", 0.3)
    with pytest.raises(wbtool.WbtoolError, match=r"shared run over has ended \(finished\).*"
                                                 r"resume='allow'"):
        wbtool.init(mode="shared", id="over", settings={**quiet, "x_primary": False})
    assert record(store_dir)["state"] == "finished"

    secondary = subprocess.Popen([sys.executable, "-c", """
import wbtool
run = wbtool.init(id="over", mode="shared", settings={"quiet": True, "console": "off",
                                                      "x_primary": False})
run.log({"joined": 1})
run.finish()
"""])
    time.sleep(1.5)  # it has seen the ended run for a while
    primary = wbtool.init(id="over", project="p", mode="shared", resume="allow", settings=quiet)
    assert secondary.wait(timeout=60) == 0
    primary.finish()
    assert [r["joined"] for r in rows(store_dir) if "joined" in r] == [1]


SHARED_STATS = """
import sys, time, wbtool
rank = int(sys.argv[1])
settings = {"quiet": True, "console": "off", "x_primary": rank == 0,
            "x_stats_sampling_interval": 0.1, "x_stats_disk_paths": []}
if rank < 2:
    settings["x_label"] = f"rank{rank}"
run = wbtool.init(id="ddp3", project="p", mode="shared", settings=settings)
time.sleep(1.5)  # the first samples come once a second has passed
run.finish()
"""


def test_every_process_of_a_shared_run_samples_system_metrics_under_its_label(
        store_dir: Path) -> None:
    """x_label names the system metrics of each process of a shared run (as
    the reference has it); a secondary with no label is named by host and pid."""
    import socket

    procs = {rank: subprocess.Popen([sys.executable, "-c", SHARED_STATS, str(rank)])
             for rank in (1, 2, 0)}
    for proc in procs.values():
        assert proc.wait(timeout=60) == 0
    samples = list(iter_rows(run_dir(store_dir) / "system.jsonl"))
    labels = {r.get("_label") for r in samples}
    assert labels == {"rank0", "rank1", f"{socket.gethostname()}:{procs[2].pid}"}
    for label in labels:
        mine = [r for r in samples if r["_label"] == label]
        assert all("proc.memory.rssMB" in r for r in mine)
        started = record(store_dir)["started_at"]  # the run's, not the process's
        assert all(abs(r["_timestamp"] - started - r["_runtime"]) < 0.5 for r in mine)
    import wbtool

    shown = wbtool.Api().run("p/ddp3").history(stream="system", keys=["proc.memory.rssMB"],
                                               samples=10_000, pandas=False)
    assert [r["_label"] for r in shown] == [r["_label"] for r in samples]


SHARED_LABELS = """
import sys, wbtool
rank = int(sys.argv[1])
settings = {"quiet": True, "console": "off", "x_primary": rank == 0,
            "x_disable_stats": True}
if rank == 1:
    settings["x_label"] = "rank1"
run = wbtool.init(id="ddp4", project="p", mode="shared", settings=settings)
for i in range(20):
    run.log({"loss": float(rank * 100 + i)})
if rank == 0:
    sys.stdin.readline()  # the secondaries are done
run.finish()
"""


def test_history_rows_of_a_shared_run_name_the_secondary_that_logged_them(
        store_dir: Path, cli: Cli) -> None:
    """A secondary of a shared run writes its label (x_label, else host:pid)
    into each history row as ``_label``, as into its system samples; the
    primary's rows have none. The label is no metric: not in the summary, not
    a column of runs list or export, nor a chart; runs history CSV ends with it."""
    import socket

    primary = subprocess.Popen([sys.executable, "-c", SHARED_LABELS, "0"],
                               stdin=subprocess.PIPE, text=True)
    secondaries = {rank: subprocess.Popen([sys.executable, "-c", SHARED_LABELS, str(rank)])
                   for rank in (1, 2)}
    for proc in secondaries.values():
        assert proc.wait(timeout=60) == 0
    primary.communicate("done\n", timeout=60)
    assert primary.returncode == 0
    history = rows(store_dir)
    labels = {2: f"{socket.gethostname()}:{secondaries[2].pid}", 1: "rank1"}
    for rank in range(3):
        mine = [r for r in history if 100 * rank <= r["loss"] < 100 * rank + 100]
        assert len(mine) == 20
        assert {r.get("_label") for r in mine} == {labels.get(rank)}
    summary = json.loads((run_dir(store_dir) / "summary.json").read_text())
    assert "_label" not in summary and "loss" in summary

    import wbtool

    api_run = wbtool.Api().run("p/ddp4")
    assert "_label" not in api_run.summary
    assert [r.get("_label") for r in api_run.scan_history()] == [
        r.get("_label") for r in history]
    # with keys, too, each row names its writer; naming _label drops no row
    for keys in (["loss"], ["loss", "_label"], ["_label", "loss"]):
        assert list(api_run.scan_history(keys=keys)) == [
            {k: r[k] for k in ("loss", "_step", "_label") if k in r} for r in history]
    assert [r.get("_label") for r in api_run.history(keys=["loss"], pandas=False)] == [
        r.get("_label") for r in history]
    shown = cli("runs", "show", "ddp4", check=True).out
    assert "_label" not in shown and "loss (rank1)" in shown  # each process's own chart
    export = cli("runs", "export", "-f", "jsonl", check=True).out
    assert "_label" not in export and '"summary.loss"' in export
    table = list(csv.reader(io.StringIO(cli("runs", "history", "ddp4", "-f", "csv",
                                            check=True).out)))
    assert table[0] == ["_step", "loss", "_runtime", "_timestamp", "_label"]
    assert sorted(row[-1] for row in table[1:]) == sorted(r.get("_label", "") for r in history)
    rewound = wbtool.init(id="ddp4", resume_from="ddp4?_step=5", settings={"quiet": True})
    assert "_label" not in rewound.summary
    rewound.finish()


SHARED_LATE = """
import json, os, sys, time, wbtool
rank = int(sys.argv[1])
run = wbtool.init(id="ddp2", project="p", mode="shared", config={f"c{rank}": 0},
                  settings={"quiet": True, "console": "off", "x_primary": rank == 0})
if rank == 0:
    run.define_metric("loss", summary="min,mean")
    run.summary["best"] = 1
    sys.stdin.readline()  # the secondary has joined (its steps count from 0)
    for v in (3, 1, 2):
        run.log({"loss": v})
    run.config.update({"c0": 1}, allow_val_change=True)
else:
    run.define_metric("acc", summary="max")
    run.summary["gone"] = 1
    del run.summary["gone"]
    run.log({"acc": 0.5})
    print("joined", flush=True)
    record = os.path.join(run.settings.sync_dir, "run.json")
    while json.load(open(record))["state"] != "finished":  # outlive the primary
        time.sleep(0.05)
run.finish()
"""


def test_a_secondary_keeps_what_the_primary_of_a_shared_run_defined(store_dir: Path) -> None:
    """A secondary that writes run.json and config.yaml after its primary
    leaves the primary's define_metric summaries, hand-set summary keys and
    config changes in them, so that a resumed run goes on from them."""
    import wbtool

    secondary = subprocess.Popen([sys.executable, "-c", SHARED_LATE, "1"],
                                 stdout=subprocess.PIPE, text=True)
    primary = subprocess.Popen([sys.executable, "-c", SHARED_LATE, "0"], stdin=subprocess.PIPE,
                               text=True)
    assert secondary.stdout is not None and secondary.stdout.readline() == "joined\n"
    primary.communicate("go\n", timeout=60)
    assert primary.returncode == 0
    assert secondary.wait(timeout=60) == 0
    secondary.stdout.close()
    doc = record(store_dir)
    assert sorted(m["name"] for m in doc["metrics"]) == ["acc", "loss"]
    assert doc["summary_user_keys"] == ["best"]
    assert doc["summary_counts"] == {"loss": 3}
    summary = json.loads((run_dir(store_dir) / "summary.json").read_text())
    history = rows(store_dir)
    assert sorted(r["_step"] for r in history) == [0, 0, 1, 2]
    for key in ("_step", "_runtime", "_timestamp"):  # the secondary, last to write, is behind
        assert summary[key] == max(r[key] for r in history), key
    run = wbtool.init(id="ddp2", resume="allow", settings={"quiet": True, "console": "off"})
    assert dict(run.config) == {"c0": 1, "c1": 0}
    run.log({"loss": 0, "best": 9})
    assert run.summary["_step"] == 3  # after the highest step, not after the last row's
    assert run.summary["loss"] == {"min": 0, "mean": 1.5}
    assert run.summary["best"] == 1
    run.finish()


def test_a_fast_loop_hands_encoding_to_a_helper_that_outlives_a_kill(store_dir: Path) -> None:
    # Enough rows to move JSON encoding to the helper process; the parent is
    # killed right after logging, and the helper still writes every row.
    proc = child(PRELUDE + """
for i in range(60000):
    run.log({'i': i, 'x': i * 0.5, 'nan': float('nan')})
print("logged", flush=True)
time.sleep(60)
""")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "logged"
    time.sleep(2.0)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while True:  # the helper finishes on its own once its input ends
        got = rows(store_dir)
        if len(got) == 60000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [r["i"] for r in got] == list(range(60000))
    assert all(math.isnan(r["nan"]) for r in got[:10])


@pytest.mark.slow
def test_a_loop_that_logs_faster_than_rows_are_written_loses_only_its_last_second(
        store_dir: Path) -> None:
    """Logging flat out for seconds outruns the writer; the loop is held back
    so that a SIGKILL still loses no row logged more than about a second
    before it, instead of a backlog of seconds of rows."""
    proc = child(PRELUDE + """
i, end = 0, time.monotonic() + 4.0
while time.monotonic() < end:
    for _ in range(1000):
        run.log({'i': i, 'loss': 0.5, 'acc': 0.25})
        i += 1
print(i, flush=True)
time.sleep(60)
""")
    assert proc.stdout is not None
    logged = int(proc.stdout.readline())
    time.sleep(2.5)  # what is left is written within about a second (a backlog took 5 s)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while True:  # the helper finishes on its own once its input ends
        got = rows(store_dir)
        if len(got) >= logged or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logged > 100_000  # fast enough to outrun the writer
    assert [r["i"] for r in got] == list(range(logged))


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT])
def test_the_encoding_helper_outlives_a_signal_to_the_whole_group(
    store_dir: Path, signum: int
) -> None:
    """A signal that a launcher or a batch system sends to the whole process
    group, and the program handles (a checkpoint on SIGUSR1), ended the
    helper: "the history encoder stopped"."""
    proc = child(PRELUDE + f"""
import signal
os.setpgid(0, 0)  # a group of its own, with the helper to come
signal.signal({int(signum)}, lambda signum, frame: None)
for i in range(30000):
    run.log({{'i': i}})
run._flush()
time.sleep(1)  # the helper has started and set its signals
os.killpg(0, {int(signum)})
time.sleep(1)
for i in range(30000, 60000):
    run.log({{'i': i}})
""")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "encoder" not in err
    assert [r["i"] for r in rows(store_dir)] == list(range(60000))


def test_the_encoding_helper_ends_quietly_on_a_batch_cut_short(tmp_path: Path) -> None:
    """A parent killed while it handed a batch over left the helper to fail
    on it with a traceback ("marshal data too short")."""
    import marshal

    from wbtool.runs.history import _ENCODER

    path = tmp_path / "history.jsonl"
    helper = subprocess.Popen([sys.executable, "-S", "-E", "-c", _ENCODER, str(path)],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    whole = marshal.dumps([{"i": 0}, {"i": 1}])
    cut = marshal.dumps([{"i": 2}, {"i": 3}])
    frames = (len(whole).to_bytes(8, "little") + whole
              + len(cut).to_bytes(8, "little") + cut[:len(cut) // 2])
    _, err = helper.communicate(frames, timeout=60)
    assert (helper.returncode, err) == (0, b"")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"i": 0}, {"i": 1}]


def test_offloaded_history_is_complete_and_ordered_at_finish(store_dir: Path) -> None:
    import wbtool

    run = wbtool.init(settings={"quiet": True, "console": "off"})
    for i in range(50000):
        run.log({"i": i, "s": "text \u00e9 \"q\"\n"})
        if i == 10000:
            run._flush()  # one large flush: the helper takes over
    assert run._history is not None and run._history._encoder is not None
    run.finish()
    got = rows(store_dir)
    assert [r["i"] for r in got] == list(range(50000))
    assert got[-1]["s"] == "text \u00e9 \"q\"\n"


def test_a_full_disk_tears_no_history_line_and_loses_no_row(store_dir: Path) -> None:
    """A flush that fails part-way (the file size limit stands in for a full
    disk: the write stops short, then fails) leaves no torn line, and the rows
    are written once there is room again."""
    proc = child(PRELUDE + """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG, not death
path = os.path.join(run.dir, "..", "history.jsonl")
for i in range(10):
    run.log({'i': i})
time.sleep(2.5)  # flushed by the run's writer
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 1500, hard))
for i in range(10, 20):
    run.log({'i': i, 'pad': 'x' * 1000})
time.sleep(2.5)  # the writer's flush stops short of the limit, then fails
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
for i in range(20, 30):
    run.log({'i': i})
run.finish()
""")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "File too large" in err  # the failed flush was told
    lines = (run_dir(store_dir) / "history.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["i"] for line in lines] == list(range(30))


def test_a_history_encoder_that_dies_on_a_full_disk_leaves_no_torn_line(
    tmp_path: Path,
) -> None:
    """The helper that encodes large flushes died part-way through a line
    when the disk filled up (the file size limit stands in for it); the
    writer then went on appending here, onto the torn line."""
    path = tmp_path / "history.jsonl"
    proc = child(f"""
import os, resource, signal, time
from wbtool.runs.history import LineWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = {str(path)!r}
w = LineWriter(path)
for i in range(10):
    w.append({{'i': i}})
w.flush()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 50000, hard))
for i in range(10, 5010):
    w.append({{'i': i, 'pad': 'x' * 100}})
w.flush()  # handed to the helper, which inherits the limit and dies part-way
assert w._encoder is not None
w._encoder.proc.wait(timeout=60)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
for i in range(5010, 5020):
    w.append({{'i': i}})
w.flush()  # the helper is gone: written here
w.close()
print(w.error)
""")
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")  # no traceback from the helper
    assert out == f"the history encoder could not write {path}: File too large\n"
    got = [json.loads(line)["i"] for line in path.read_bytes().splitlines()]
    assert got[:10] == list(range(10)) and got[-10:] == list(range(5010, 5020))
    assert got == sorted(got) and len(got) > 300  # what the helper wrote whole is kept


def test_a_run_that_cannot_start_on_a_full_disk_leaves_no_folder(store_dir: Path) -> None:
    """Starting a run on a full disk fails and leaves nothing behind (the file
    size limit stands in for a full disk)."""
    first = child(PRELUDE + "run.finish()\n")
    assert first.wait(timeout=60) == 0
    proc = child("""
import resource, signal, wbtool
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
try:
    wbtool.init(project="p", config={"blob": "x" * 5000}, settings={"quiet": True})
except OSError as e:
    print("refused", e.strerror)
""")
    out, err = proc.communicate(timeout=60)
    assert out == "refused File too large\n", err
    assert len(list((store_dir / "runs").iterdir())) == 1


def test_a_fork_that_cannot_copy_its_history_on_a_full_disk_leaves_no_folder(
    store_dir: Path,
) -> None:
    """A fork whose copy of the parent's history fails (the file size limit
    stands in for a full disk) leaves no half-made run folder behind."""
    first = child(PRELUDE + """
for i in range(50):
    run.log({'i': i, 'pad': 'x' * 100})
run.finish()
""")
    assert first.wait(timeout=60) == 0
    parent = run_dir(store_dir).name
    proc = child(f"""
import resource, signal, wbtool
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
try:
    wbtool.init(project="p", fork_from="{parent}?_step=40", settings={{"quiet": True}})
except OSError as e:
    print("refused", e.strerror)
""")
    out, err = proc.communicate(timeout=60)
    assert out == "refused File too large\n", err
    assert [p.name for p in (store_dir / "runs").iterdir()] == [parent]


def test_a_finish_that_fails_on_a_full_disk_leaves_no_file_open(store_dir: Path) -> None:
    """A finish whose last history flush fails (the file size limit stands in
    for a full disk) is told, and the process that goes on holds none of the
    run's files open."""
    proc = child(PRELUDE + """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = os.path.join(run.dir, "..", "history.jsonl")
run.log({'i': 0})
time.sleep(2.5)  # flushed by the run's writer
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 100, resource.RLIM_INFINITY))
for i in range(1, 30):
    run.log({'i': i, 'pad': 'x' * 100})
try:
    run.finish()
except OSError as e:
    print("refused", e.strerror)
held = []
for fd in os.listdir("/proc/self/fd"):
    try:
        held.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass  # the listing's own descriptor
print(sorted(os.path.basename(p) for p in held if run.id in p))
""")
    out, err = proc.communicate(timeout=60)
    assert out == "refused File too large\n[]\n", err
