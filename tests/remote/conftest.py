"""Backends for the remote contract suite: a local folder and a real S3 server (moto).

moto runs in server mode on 127.0.0.1 and a free port, once per session, and
is stopped by its own PID. Credentials reach s3fs the usual way, through the
``AWS_*`` environment variables.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wbtool.remote.fs import Remote, open_remote

BUCKET = "wbtool-test"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Fail fast against a dead endpoint: one attempt, short time-outs.
FAST_FAIL = {"config_kwargs": {"connect_timeout": 2, "read_timeout": 5,
                               "retries": {"max_attempts": 1}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto_server did not start listening within 20 s")


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @property
    def options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, **FAST_FAIL}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    mp = pytest.MonkeyPatch()
    for key, value in AWS_ENV.items():
        mp.setenv(key, value)
    port = free_port()
    script = Path(sys.executable).parent / "moto_server"
    cmd = ([str(script)] if script.exists() else [sys.executable, "-m", "moto.server"])
    proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc, time.monotonic() + 20)
        import s3fs

        endpoint = f"http://127.0.0.1:{port}"
        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(BUCKET)
        yield S3Server(endpoint)
    except RuntimeError as e:
        proc.kill()
        err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
        pytest.fail(f"{e} (is the test extra installed? it brings moto[server]):\n{err}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        mp.undo()


@dataclass
class Backend:
    """A fresh, empty remote for one test, and how to reopen it."""

    kind: str
    url: str
    options: dict[str, Any]

    def open(self) -> Remote:
        return open_remote(self.url, self.options)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend("local", str(tmp_path / "remote"), {})
    server: S3Server = request.getfixturevalue("s3_server")
    return Backend("s3", f"s3://{BUCKET}/{uuid.uuid4().hex}", server.options)


@pytest.fixture
def remote(backend: Backend) -> Remote:
    return backend.open()

