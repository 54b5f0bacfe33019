"""What a user meets when the server fails them mid-command: a real server
behind a proxy (a real process) that stops answering uploads, and Ctrl-C
(a real SIGINT) to the real ``wbtool`` process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Result, make_tree
from tests.remote.conftest import Backend, azurite_env, free_port, server_for
from tests.remote.test_sync import Store
from wbtool.errors import EXIT_REMOTE_UNREACHABLE
from wbtool.remote import fs
from wbtool.remote.fs import open_remote

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

    def stall(self, on: bool, only: str = "") -> None:
        """Hold every upload from now on (or those whose request line has ``only``)."""
        flag = self.folder / "stall"
        if on:
            flag.write_text(only)
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


def _interrupted_sync(store: Store, ready: Callable[[], bool], what: str) -> None:
    """Start ``wbtool sync`` from ``store``, press Ctrl-C once ``ready()``,
    and check that it ends at once, as an interruption."""
    sync = subprocess.Popen([sys.executable, "-m", "wbtool", "sync", "--no-runs"],
                            env={**os.environ, **store.env}, cwd=store.cli.cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(ready, what)
        interrupted = time.monotonic()
        sync.send_signal(signal.SIGINT)
        out, err = sync.communicate(timeout=30)
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.communicate()
    assert time.monotonic() - interrupted < 10
    assert (sync.returncode, out, err) == (130, "", "wbtool: error: interrupted\n")


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
    _interrupted_sync(a, lambda: proxy.held() >= 1, "an upload to hang")
    assert _published(proxy.direct) == []  # objects only: no manifest, no version record

    proxy.stall(False)
    sent = a.result("sync", "--no-runs")
    assert (sent["versions_sent"], sent["manifests_sent"]) == (1, 1)
    b = Store(cli, tmp_path / "b" / ".wbtool", proxy.direct)
    assert b.result("pull")["versions_pulled"] == 1
    b("artifact", "verify", "data:v0")


@pytest.mark.slow
def test_ctrl_c_during_a_large_upload_to_s3_takes_its_parts_back(
        request: pytest.FixtureRequest, cli: Cli, tmp_path: Path) -> None:
    """An S3 multipart upload that is neither completed nor aborted keeps its
    parts on the server (billed) until a lifecycle rule removes them: Ctrl-C
    aborts the uploads under way, even while their parts hang."""
    from wbtool.remote import s3parts

    server = server_for(request, "s3")
    backend = Backend("s3", server.url(), server.options)
    folder = tmp_path / "proxy"
    folder.mkdir()
    proxy = Proxy(folder, backend, _target_port(backend))
    try:
        a = Store(cli, tmp_path / "a" / ".wbtool", proxy.backend)
        src = tmp_path / "src"
        src.mkdir()
        for i in range(2):
            (src / f"model-{i}.bin").write_bytes(os.urandom(s3parts.THRESHOLD))
        a("artifact", "log", "model", str(src), "--type", "model")

        client = proxy.direct.open().client  # type: ignore[attr-defined]
        bucket, _, prefix = proxy.direct.url.removeprefix("s3://").partition("/")

        def pending() -> list[dict[str, Any]]:
            answer = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
            return list(answer.get("Uploads", []))

        proxy.stall(True, only="partNumber=")
        _interrupted_sync(a, lambda: len(pending()) == 2 and proxy.held() >= 2,
                          "both uploads to start and their parts to hang")
        assert pending() == []
        assert _published(proxy.direct) == []
    finally:
        proxy.stop()


@pytest.mark.parametrize(("url", "options"), [
    ("s3://bucket/p", {"endpoint_url": "http://127.0.0.1:9"}),
    ("s3://bucket/p", {"endpoint_url": "http://127.0.0.1:9", "use_ssl": False}),  # s3fs
    ("gs://bucket/p", {"token": "anon"}),
    ("az://bucket/p", {"account_name": "devstoreaccount1", "anon": True}),
])
def test_a_server_that_stops_answering_is_given_up_on(url: str, options: dict[str, Any]) -> None:
    """The backends' own time-outs and retries would wait minutes (S3) to
    over half an hour (GCS, Azure) for a server that accepts connections
    and never answers; wbtool's wait a bounded time between two bytes
    (adlfs applies them to transfers only, not to listings)."""
    with socket.socket() as silent:  # accepts connections (a GCS remote tries one first)
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        if url.startswith("gs"):
            options = {**options, "endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        remote = open_remote(url, options)
        if url.startswith("gs"):
            remote.fs  # noqa: B018  # connected now, while the socket listens
    if isinstance(remote, fs.S3Remote):
        config = remote.client.meta.config
        limits = (config.connect_timeout, config.read_timeout, config.retries)
        assert limits == (fs.CONNECT_SECONDS, fs.READ_SECONDS,
                          {"mode": "standard", "total_max_attempts": fs.ATTEMPTS})
    elif url.startswith("s3"):
        given = remote.fs.config_kwargs  # type: ignore[attr-defined]
        assert (given["connect_timeout"], given["read_timeout"]) == (
            fs.CONNECT_SECONDS, fs.READ_SECONDS)
    elif url.startswith("gs"):
        timeout = remote.fs.requests_timeout  # type: ignore[attr-defined]
        assert (timeout.total, timeout.sock_connect, timeout.sock_read) == (
            None, fs.CONNECT_SECONDS, fs.READ_SECONDS)
    else:  # transfers, and (in the service client) every other request
        assert remote.fs._timeout_kwargs == {  # type: ignore[attr-defined]
            "connection_timeout": fs.CONNECT_SECONDS, "read_timeout": fs.READ_SECONDS}
        assert _azure_limits(remote) == (fs.CONNECT_SECONDS, fs.READ_SECONDS, fs.ATTEMPTS - 1)
    assert fs.CONNECT_SECONDS + fs.ATTEMPTS * fs.READ_SECONDS <= 120


def _azure_limits(remote: fs.Remote) -> tuple[int, int, int]:
    """The connect and read time-outs and the retries of an Azure remote's
    service client, which every container and blob client shares."""
    config = remote.fs.service_client._config  # type: ignore[attr-defined]
    timeouts = config.transport.connection_config
    return timeouts.timeout, timeouts.read_timeout, config.retry_policy.total_retries


def test_the_remotes_own_time_limits_win() -> None:
    config = {"connect_timeout": 3, "read_timeout": 600, "retries": {"max_attempts": 9}}
    remote = open_remote("s3://bucket/p", {"endpoint_url": "http://127.0.0.1:9",
                                           "config_kwargs": config})
    assert isinstance(remote, fs.S3Remote)
    got = remote.client.meta.config
    assert (got.connect_timeout, got.read_timeout) == (3, 600)
    assert got.retries["total_max_attempts"] == 10  # botocore's "max_attempts" are retries

    remote = open_remote("az://bucket/p", {"account_name": "devstoreaccount1", "anon": True,
                                           "read_timeout": 600, "retry_total": 9})
    assert _azure_limits(remote) == (fs.CONNECT_SECONDS, 600, 9)


def test_a_time_out_that_says_nothing_is_told_in_words() -> None:
    import fsspec.exceptions

    error = fs.unreachable("gs://b/p", fs._one_line(fsspec.exceptions.FSTimeoutError()))
    assert str(error) == ("remote gs://b/p is unreachable: "
                          f"no answer within {fs.READ_SECONDS} seconds")


# Limits a remote's options set, far below wbtool's own, so that a test waits
# seconds: one retry, one second after the first try.
QUICK_AZURE = {"connection_timeout": 2, "read_timeout": 1, "retry_total": 1,
               "initial_backoff": 0, "increment_base": 1, "random_jitter_range": 0}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """The port of a server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield int(server.getsockname()[1])
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)
    server.close()
    for conn in held:
        conn.close()


def _against_azure(cli: Cli, tmp_path: Path, port: int, options: dict[str, Any],
                   args: tuple[str, ...], seconds: float) -> tuple[Result, float]:
    """``wbtool ARGS`` in a store with one artifact and, as its default remote,
    Azure at 127.0.0.1:``port`` with ``options``: the result and the time it
    took. A command still running after ``seconds`` fails the test."""
    env = {"WBTOOL_DIR": str(tmp_path / "a" / ".wbtool"), **azurite_env(port)}
    src = make_tree(tmp_path / "src", {"f.txt": b"x\n"})
    cli("artifact", "log", "data", str(src), "--type", "dataset", env=env, check=True)
    given = [arg for key, value in options.items() for arg in ("-o", f"{key}={json.dumps(value)}")]
    cli("remote", "add", "team", "az://bucket/p", "--default", *given, env=env, check=True)
    began = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "wbtool", *args], capture_output=True,
                              text=True, cwd=cli.cwd, env={**os.environ, **env}, timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wbtool {' '.join(args)} still waited for Azure after {seconds} s")
    return Result(proc.returncode, proc.stdout, proc.stderr), time.monotonic() - began


def _assert_unreachable(res: Result) -> None:
    assert res.code == EXIT_REMOTE_UNREACHABLE, res.err
    assert res.err.startswith("wbtool: error: remote az://bucket/p is unreachable: "), res.err
    assert res.err.count("\n") == 1 and "Traceback" not in res.err, res.err


@pytest.mark.parametrize("args", [("sync", "--no-runs"), ("pull",)], ids=["sync", "pull"])
def test_an_azure_server_that_never_answers_is_given_up_on(
        args: tuple[str, ...], silent_port: int, cli: Cli, tmp_path: Path) -> None:
    """Listings keep to the time limits as transfers do (adlfs gives its own
    to transfers only, and the Azure SDK waits 60 seconds between two bytes,
    four times, for each request), and the remote's options set them."""
    res, took = _against_azure(cli, tmp_path, silent_port, QUICK_AZURE, args, seconds=20)
    _assert_unreachable(res)
    assert took < 15


@pytest.mark.parametrize("args", [("sync", "--no-runs"), ("pull",)], ids=["sync", "pull"])
def test_an_azure_endpoint_where_nothing_listens_fails_in_seconds(
        args: tuple[str, ...], cli: Cli, tmp_path: Path) -> None:
    """With wbtool's own limits: the Azure SDK's retries would wait 18, 24
    and 42 seconds, for each of the two requests of a listing."""
    port = free_port()
    res, took = _against_azure(cli, tmp_path, port, {}, args, seconds=25)
    _assert_unreachable(res)
    assert res.err.endswith(f"connection to 127.0.0.1:{port} refused: start the server there, "
                            "or point BlobEndpoint in AZURE_STORAGE_CONNECTION_STRING to where "
                            "it runs\n"), res.err
    assert took < 20
