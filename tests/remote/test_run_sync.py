"""``wbtool run --sync`` and ``--live SEC``: a run pushed to the default remote
when it finishes, and while it runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.remote.conftest import Backend, make_backend
from tests.remote.test_sync import Store
from wbtool.errors import EXIT_USAGE

# Logs three rows; with --live, waits until the remote holds this run's history.
CHILD = """
import json, os, sys, time
import wbtool
from wbtool.remote.fs import open_remote
run = wbtool.init(project="p", settings={"quiet": True})
for i in range(3):
    run.log({"loss": 1.0 / (i + 1)})
print("training", flush=True)
if sys.argv[1] == "live":
    remote = open_remote(sys.argv[2], json.loads(sys.argv[3]))
    prefix = f"projects/p/runs/{run.id}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = remote.list(prefix)
        if any(n.startswith(prefix + "history.jsonl") for n in names):
            print("seen on the remote while running", flush=True)
            break
        time.sleep(0.2)
sys.exit(int(sys.argv[4]))
"""


def _run(store: Store, backend: Backend, *flags: str, mode: str = "end", code: int = 0) -> str:
    res = store("run", *flags, "--", sys.executable, "-c", CHILD, mode, backend.url,
                json.dumps(backend.options), str(code), code=code)
    return str(res.out) + str(res.err)


def _run_ids(store: Store) -> list[str]:
    return [r["id"] for r in store.result("runs", "list")]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """What is pushed is the same as for ``wbtool sync`` (tested on every backend);
    here a folder and S3 suffice."""
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
def store(cli: Cli, tmp_path: Path, backend: Backend) -> Store:
    return Store(cli, tmp_path / "a" / ".wbtool", backend)


def test_sync_pushes_the_finished_run(store: Store, backend: Backend, cli: Cli,
                                      tmp_path: Path) -> None:
    out = _run(store, backend, "--sync", "--project", "p", code=3)  # the command's status
    (run_id,) = _run_ids(store)
    remote = backend.open()
    doc = json.loads(remote.read(f"projects/p/runs/{run_id}/run.json"))
    assert doc["state"] == "failed" and doc["exit_code"] == 3
    assert "training" in out
    other = Store(cli, tmp_path / "b" / ".wbtool", backend)
    other("pull", "--project", "p", "--run", run_id)
    rows = [json.loads(line) for line in other("runs", "history", run_id).out.splitlines()]
    assert [r["loss"] for r in rows] == [1.0, 0.5, 1 / 3]


def test_live_pushes_while_running(store: Store, backend: Backend) -> None:
    out = _run(store, backend, "--live", "0.5", mode="live")
    assert "seen on the remote while running" in out
    (run_id,) = _run_ids(store)
    doc = json.loads(backend.open().read(f"projects/p/runs/{run_id}/run.json"))
    assert doc["state"] == "finished"  # the last push comes after the end
    assert (store.path / "logs" / f"sync-{run_id}.log").exists()


def test_sync_without_a_default_remote_fails_before_the_command(cli: Cli,
                                                                tmp_path: Path) -> None:
    marker = tmp_path / "started"
    res = cli("run", "--sync", "--", sys.executable, "-c",
              f"open({str(marker)!r}, 'w').close()")
    assert res.code == EXIT_USAGE and "default remote" in res.err
    assert not marker.exists()


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_failed_push_keeps_the_commands_status(store: Store, backend: Backend) -> None:
    Path(backend.url).rmdir()
    Path(backend.url).write_text("not a folder")  # every write to the remote fails
    res = store("run", "--sync", "--", sys.executable, "-c", "print('ok')")
    assert "was not pushed" in res.err and "wbtool sync" in res.err
    assert res.err.count("Traceback") == 0
    (run_id,) = _run_ids(store)
    assert store.result("runs", "show", run_id)["state"] == "finished"


def test_a_push_that_hangs_can_be_ended_by_sigterm(cli: Cli, store_dir: Path) -> None:
    """The command ran and its run is recorded; the push to a remote that
    never answers (a server that takes connections and says nothing) ends on
    SIGTERM as any command would, and leaves the recorded run as it was."""
    import signal
    import socket
    import subprocess
    import time

    from tests.remote.conftest import AWS_ENV

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # connections are taken by the kernel, never answered
    try:
        port = server.getsockname()[1]
        env = {**os.environ, **AWS_ENV}
        res = cli("remote", "add", "silent", "s3://bucket", "-o",
                  f"endpoint_url=http://127.0.0.1:{port}", "--default", env=env)
        assert res.code == 0, res.err
        proc = subprocess.Popen([sys.executable, "-m", "wbtool", "run", "-q", "--sync", "--",
                                 "true"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while True:  # the command has run and its run is recorded: the push is on
                docs = [json.loads((d / "run.json").read_text())
                        for d in (store_dir / "runs").glob("*") if (d / "run.json").exists()]
                if docs and docs[0]["state"] == "finished":
                    break
                assert time.monotonic() < deadline, "the run never finished"
                time.sleep(0.05)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
        finally:
            proc.kill()
            proc.wait()
    finally:
        server.close()
    assert proc.returncode == -signal.SIGTERM
    assert docs[0]["exit_code"] == 0
