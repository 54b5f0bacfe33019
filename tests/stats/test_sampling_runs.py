"""System metrics end to end: a run's system.jsonl, from wbtool.init and from
wbtool run (the command's process tree), and wbtool runs system."""

from __future__ import annotations

import csv
import io
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import wbtool
from tests.conftest import Cli
from wbtool.errors import SettingsError
from wbtool.runs.history import iter_rows

PY = sys.executable
BUSY = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"


def only_run(store: Path) -> Path:
    (folder,) = (store / "runs").iterdir()
    return folder


def test_init_samples_this_process(store_dir: Path) -> None:
    import wbtool

    run = wbtool.init(settings={"quiet": True, "console": "off",
                                "x_stats_sampling_interval": 0.2})
    exec(BUSY.format(s=2.0))  # a busy loop in this process
    run.finish()
    rows = list(iter_rows(Path(run._folder.system)))
    assert len(rows) >= 3
    last = rows[-1]
    for key in ("cpu", "proc.cpu.threads", "proc.memory.rssMB", "memory_percent",
                "proc.memory.availableMB", "disk./.usagePercent", "network.sent",
                "_timestamp", "_runtime"):
        assert key in last, key
    assert max(r["cpu"] for r in rows) > 10
    meta = json.loads(Path(run._folder.metadata).read_text())
    assert meta["cpu_count_logical"] >= 1


def test_wbtool_run_samples_the_command_tree(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "-q", "--interval", "0.2", "--", PY, "-c", BUSY.format(s=2.5))
    assert res.code == 0, res.err
    rows = list(iter_rows(only_run(store_dir) / "system.jsonl"))
    assert len(rows) >= 3 and max(r["cpu"] for r in rows) > 20
    table = cli("runs", "system", only_run(store_dir).name, "--keys", "cpu,proc.memory.rssMB")
    assert table.code == 0
    parsed = list(csv.reader(io.StringIO(table.out)))
    assert parsed[0] == ["_timestamp", "_runtime", "cpu", "proc.memory.rssMB"]
    assert len(parsed) == len(rows) + 1
    as_json = cli("runs", "system", only_run(store_dir).name, "--format", "jsonl")
    assert [json.loads(line) for line in as_json.out.splitlines()] == rows
    as_json = cli("runs", "system", only_run(store_dir).name, "-f", "jsonl", "-k", "cpu")
    assert [json.loads(line) for line in as_json.out.splitlines()] == [
        {k: r[k] for k in ("_timestamp", "_runtime", "cpu")} for r in rows]
    bad = cli("runs", "system", only_run(store_dir).name, "--keys", "nope")
    assert bad.code == 2
    show = cli("runs", "show", only_run(store_dir).name)
    assert "system metrics:" in show.out and "cpu" in show.out


def test_no_stats(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "-q", "--no-stats", "--interval", "0.1", "--", PY, "-c",
              BUSY.format(s=0.8))
    assert res.code == 0
    assert not list(iter_rows(only_run(store_dir) / "system.jsonl"))


def test_an_interval_longer_than_the_clock_can_wait_is_no_error(cli: Cli,
                                                                store_dir: Path) -> None:
    """The wait is cut to the longest the platform can wait: no traceback."""
    res = cli("run", "-q", "--interval", "1e300", "--", PY, "-c", "import time; time.sleep(1.5)")
    assert (res.code, res.err) == (0, "")
    assert not list(iter_rows(only_run(store_dir) / "system.jsonl"))


def test_an_infinite_interval_is_refused_in_one_line(cli: Cli) -> None:
    res = cli("run", "-q", "--interval", "inf", "--", PY, "-c", "pass")
    assert (res.code, res.err) == (2, "wbtool: error: --interval takes a finite number of "
                                      "seconds of at least 0.1, not inf\n")
    res = cli("run", "-q", "--", PY, "-c", "pass",
              env={"WBTOOL_X_STATS_SAMPLING_INTERVAL": "inf"})
    assert res.code == 2
    assert res.err.startswith("wbtool: error: invalid setting 'x_stats_sampling_interval'")
    assert res.err.count("\n") == 1


def test_an_interval_below_a_tenth_of_a_second_is_refused(cli: Cli, store_dir: Path) -> None:
    """1e-300 would sample a hundred times a second into an unbounded
    system.jsonl: the option and the setting are refused in one line, and no
    run is made."""
    for value in ("1e-300", "0.05", "0", "-1", "nan"):
        for args in (("--interval", value), (f"--interval={value}",)):
            res = cli("run", "-q", *args, "--", PY, "-c", "pass")
            assert res.code == 2, res.err
            assert res.err == ("wbtool: error: --interval takes a finite number of seconds "
                               f"of at least 0.1, not {float(value):g}\n")
        res = cli("run", "-q", "--", PY, "-c", "pass",
                  env={"WBTOOL_X_STATS_SAMPLING_INTERVAL": value})
        assert res.code == 2
        assert res.err == (f"wbtool: error: invalid setting 'x_stats_sampling_interval': "
                           f"{value!r}: must be a finite number of seconds of at least 0.1\n")
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())
    with pytest.raises(SettingsError, match=r"at least 0\.1"):
        wbtool.Settings(x_stats_sampling_interval=1e-300)
    assert wbtool.Settings(x_stats_sampling_interval="0.1").x_stats_sampling_interval == 0.1


class _Series(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'reqs_total{code="200",path="/a,b"} 7\nup 1\n'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_keys_name_series_whose_labels_hold_commas(cli: Cli, store_dir: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Series)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/metrics"
        res = cli("run", "-q", "--interval", "0.1", "--", PY, "-c",
                  "import time; time.sleep(1)",
                  env={"WBTOOL_X_STATS_OPEN_METRICS_ENDPOINTS": json.dumps({"app": url}),
                       "no_proxy": "*", "NO_PROXY": "*"})
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert res.code == 0, res.err
    series = 'openmetrics.app.reqs_total{code="200",path="/a,b"}'
    table = cli("runs", "system", only_run(store_dir).name, "--keys",
                f"{series},openmetrics.app.up")
    assert table.code == 0, table.err
    parsed = list(csv.reader(io.StringIO(table.out)))
    assert parsed[0] == ["_timestamp", "_runtime", series, "openmetrics.app.up"]
    assert len(parsed) > 1 and parsed[-1][2:] == ["7.0", "1.0"]
