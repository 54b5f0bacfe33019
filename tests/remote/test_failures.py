"""What a user meets when the server fails them mid-command: a real server
behind a proxy (a real process) that stops answering uploads, and Ctrl-C
(a real SIGINT) to the real ``wbtool`` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree
from tests.remote.conftest import Backend, free_port, server_for
from tests.remote.test_sync import Store

PROXY = Path(__file__).with_name("stallproxy.py")


class Proxy:
    """``stallproxy.py`` in front of a session server, and the remote through it."""

    def __init__(self, folder: Path, backend: Backend, target: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.env: dict[str, str] = {}
        options = dict(backend.options)
        if "endpoint_url" in options:
            options["endpoint_url"] = f"http://127.0.0.1:{self.port}"
        else:  # Azure: the endpoint is in the connection string
            conn = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
            self.env["AZURE_STORAGE_CONNECTION_STRING"] = conn.replace(
                f"127.0.0.1:{target}", f"127.0.0.1:{self.port}")
        self.direct = backend  # past the proxy
        self.backend = Backend(backend.kind, backend.url, options)
        self.proc = subprocess.Popen([sys.executable, str(PROXY), str(self.port), str(target),
                                      str(folder)])

    def stall(self, on: bool) -> None:
        flag = self.folder / "stall"
        if on:
            flag.touch()
        else:
            flag.unlink()

    def held(self) -> int:
        held = self.folder / "held"
        return len(held.read_text().splitlines()) if held.exists() else 0

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _target_port(backend: Backend) -> int:
    if "endpoint_url" in backend.options:
        return int(backend.options["endpoint_url"].rsplit(":", 1)[1])
    conn = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    return int(conn.split("BlobEndpoint=http://127.0.0.1:", 1)[1].split("/", 1)[0])


@pytest.fixture(params=["s3", "gcs", "azure"])
def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Proxy]:
    server = server_for(request, request.param)
    backend = Backend(request.param, server.url(), server.options)
    folder = tmp_path / "proxy"
    folder.mkdir()
    p = Proxy(folder, backend, _target_port(backend))
    yield p
    p.stop()


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _published(backend: Backend) -> list[str]:
    """Version records and manifests on the remote, read past the proxy."""
    remote = backend.open()
    return remote.list("projects") + remote.list("manifests")


@pytest.mark.slow
def test_ctrl_c_while_the_server_hangs_ends_the_push_at_once(
        proxy: Proxy, cli: Cli, tmp_path: Path) -> None:
    """Uploads that the server never answers neither delay Ctrl-C nor keep the
    process alive, nothing is published, and a second sync finishes."""
    a = Store(cli, tmp_path / "a" / ".wbtool", proxy.backend)
    a.env.update(proxy.env)
    src = make_tree(tmp_path / "src", {f"f{i}.txt": f"file {i}\n".encode() for i in range(40)})
    a("artifact", "log", "data", str(src), "--type", "dataset")

    proxy.stall(True)
    sync = subprocess.Popen([sys.executable, "-m", "wbtool", "sync", "--no-runs"],
                            env={**os.environ, **a.env}, cwd=a.cli.cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(lambda: proxy.held() >= 1, "an upload to hang")
        interrupted = time.monotonic()
        sync.send_signal(signal.SIGINT)
        out, err = sync.communicate(timeout=30)
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.communicate()
    assert time.monotonic() - interrupted < 10
    assert (sync.returncode, out, err) == (130, "", "wbtool: error: interrupted\n")
    assert _published(proxy.direct) == []  # objects only: no manifest, no version record

    proxy.stall(False)
    sent = a.result("sync", "--no-runs")
    assert (sent["versions_sent"], sent["manifests_sent"]) == (1, 1)
    b = Store(cli, tmp_path / "b" / ".wbtool", proxy.direct)
    assert b.result("pull")["versions_pulled"] == 1
    b("artifact", "verify", "data:v0")
