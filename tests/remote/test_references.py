"""References to objects in S3, GCS and Azure Blob, and to http(s) URLs.

Every test talks to a real server: moto (S3), fake-gcs-server (GCS) and
Azurite (Azure Blob) from this folder's conftest, and ``http.server`` on
127.0.0.1 for http. References reach the object stores the way they do in
production: the backend's own environment (``AWS_ENDPOINT_URL``,
``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``), or the
options of a remote configured for the same bucket.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import wbtool
from tests.conftest import make_tree, read_tree
from tests.remote.conftest import BUCKET, Server, free_port, server_for
from wbtool.artifacts import references
from wbtool.errors import (
    ConflictError,
    NotFoundError,
    RemoteUnreachableError,
    UsageError,
    VerificationError,
)
from wbtool.hashing import hash_bytes
from wbtool.remote import config
from wbtool.remote.fs import FsspecRemote, open_remote
from wbtool.store.layout import Store

STORES = ["s3", "gcs", "azure"]


@dataclass
class Prefix:
    """A fresh prefix in the test bucket, written with the server's own options."""

    server: Server
    url: str  # scheme://bucket/<uuid>
    remote: FsspecRemote

    def put(self, key: str, data: bytes) -> str:
        """Write ``key`` (any bytes, hostile ones too) and return its URI."""
        self.remote.fs.pipe_file(f"{self.remote.root}/{key}", data)
        return f"{self.url}/{key}"

    def rm(self, key: str) -> None:
        self.remote.fs.rm_file(f"{self.remote.root}/{key}")


def _reach_from_env(kind: str, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the backend at the emulator through its usual environment variable."""
    if kind == "s3":
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.options["endpoint_url"])
    elif kind == "gcs":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.options["endpoint_url"])
    # azure: the fixture's AZURE_STORAGE_CONNECTION_STRING names Azurite already


def _prefix(server: Server) -> Prefix:
    url = server.url()
    # one client per server and worker (fsspec's instance cache), as references use
    remote = open_remote(url, {**server.options, "skip_instance_cache": False})
    assert isinstance(remote, FsspecRemote)
    return Prefix(server, url, remote)


@pytest.fixture(params=STORES)
def prefix(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Prefix:
    server = server_for(request, request.param)
    _reach_from_env(request.param, server, monkeypatch)
    return _prefix(server)


@pytest.fixture
def s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Prefix:
    server = server_for(request, "s3")
    _reach_from_env("s3", server, monkeypatch)
    return _prefix(server)


def load(ref: str) -> wbtool.Artifact:
    return wbtool.Api().artifact(ref)


def log_refs(name: str, *uris: str, **kwargs: Any) -> wbtool.Artifact:
    art = wbtool.Artifact(name, "dataset")
    for uri in uris:
        art.add_reference(uri, **kwargs)
    art.save()
    return load(f"{name}:latest")


# -- object stores ---------------------------------------------------------------------


def test_single_object_round_trip(prefix: Prefix, tmp_path: Path) -> None:
    uri = prefix.put("data/train.bin", b"x" * 1000)
    art = wbtool.Artifact("obj", "dataset")
    [entry] = art.add_reference(uri)
    assert (entry.path, entry.size, entry.ref) == ("train.bin", 1000, uri)
    assert entry.extra is not None and entry.extra["etag"]
    if prefix.server.scheme == "gs":
        assert entry.extra["generation"]
    art.save()

    got = load("obj:v0")
    assert got.get_entry("train.bin").to_dict() == entry.to_dict()
    root = tmp_path / "out"
    got.download(str(root))
    assert read_tree(root) == {"train.bin": b"x" * 1000}
    got.verify(str(root))  # references are not verified, and nothing else is there


def test_prefix_lists_every_object_under_a_name(prefix: Prefix, tmp_path: Path) -> None:
    files = {"a.txt": b"a", "sub/b.txt": b"bb", "sub/deeper/c.bin": b"\0" * 300}
    for key, data in files.items():
        prefix.put(f"set/{key}", data)
    prefix.put("set-sibling/not-me.txt", b"no")  # shares the prefix's text, not its folder
    art = wbtool.Artifact("prefix", "dataset")
    entries = art.add_reference(f"{prefix.url}/set", name="mirror")
    assert sorted(e.path for e in entries) == [f"mirror/{k}" for k in sorted(files)]
    for e in entries:
        assert e.ref == f"{prefix.url}/set/{e.path.removeprefix('mirror/')}"
        assert e.size == len(files[e.path.removeprefix("mirror/")])
    art.save()

    root = tmp_path / "out"
    load("prefix:v0").download(str(root))
    assert read_tree(root) == {f"mirror/{k}": v for k, v in files.items()}
    # a prefix given with a trailing slash and no name lands at the root
    art2 = wbtool.Artifact("prefix2", "dataset")
    assert sorted(e.path for e in art2.add_reference(f"{prefix.url}/set/")) == sorted(files)


def test_object_changed_after_logging_is_a_clear_error(prefix: Prefix, tmp_path: Path) -> None:
    uri = prefix.put("model.pt", b"version one")
    got = log_refs("changed", uri)
    prefix.put("model.pt", b"version two, longer")
    with pytest.raises(VerificationError, match="changed since it was logged"):
        got.download(str(tmp_path / "out"))
    assert not (tmp_path / "out" / "model.pt").exists()


def test_missing_object_and_allow_missing_references(prefix: Prefix, tmp_path: Path) -> None:
    gone = prefix.put("gone.txt", b"soon gone")
    kept = prefix.put("kept.txt", b"kept")
    got = log_refs("missing", gone, kept)
    prefix.rm("gone.txt")
    with pytest.raises(NotFoundError):
        got.download(str(tmp_path / "strict"))
    root = tmp_path / "lenient"
    got.download(str(root), allow_missing_references=True)
    assert read_tree(root) == {"kept.txt": b"kept"}


def test_max_objects_is_enforced(prefix: Prefix) -> None:
    for i in range(3):
        prefix.put(f"many/{i}.txt", str(i).encode())
    art = wbtool.Artifact("max", "dataset")
    with pytest.raises(UsageError, match="max_objects=2"):
        art.add_reference(f"{prefix.url}/many", max_objects=2)
    assert art.file_count == 0
    art.add_reference(f"{prefix.url}/many", max_objects=3)
    assert art.file_count == 3


def test_nothing_at_the_uri_is_not_found(prefix: Prefix) -> None:
    art = wbtool.Artifact("nothing", "dataset")
    with pytest.raises(NotFoundError):
        art.add_reference(f"{prefix.url}/no/such/key")
    assert art.file_count == 0


def test_checksum_false_records_the_uri_and_downloads_the_current_object(
    prefix: Prefix, tmp_path: Path
) -> None:
    uri = prefix.put("loose.csv", b"a,b\n")
    art = wbtool.Artifact("loose", "dataset")
    [entry] = art.add_reference(uri, checksum=False)
    assert (entry.path, entry.size, entry.ref, entry.extra) == ("loose.csv", None, uri, None)
    assert entry.digest == hash_bytes(uri.encode())
    art.save()
    prefix.put("loose.csv", b"a,b\n1,2\n")  # untracked content: whatever is there now
    root = tmp_path / "out"
    load("loose:v0").download(str(root))
    assert read_tree(root) == {"loose.csv": b"a,b\n1,2\n"}


def test_checkout_fetches_references_and_removes_extras(prefix: Prefix, tmp_path: Path) -> None:
    uri = prefix.put("w.bin", b"weights")
    got = log_refs("co", uri)
    root = make_tree(tmp_path / "co", {"stale.txt": b"old", "w.bin/inner": b"a folder in the way"})
    with pytest.raises(ConflictError, match="holds 2 files"):
        got.checkout(str(root))  # neither is the version's
    got.checkout(str(root), force=True)
    assert read_tree(root) == {"w.bin": b"weights"}


# -- S3 specifics -------------------------------------------------------------------------


def test_versioned_bucket_downloads_the_recorded_version(s3: Prefix, tmp_path: Path) -> None:
    bucket = f"versioned-{uuid.uuid4().hex[:12]}"
    fs = s3.remote.fs
    fs.mkdir(bucket)
    fs.call_s3("put_bucket_versioning", Bucket=bucket,
               VersioningConfiguration={"Status": "Enabled"})
    fs.pipe_file(f"{bucket}/m.bin", b"first")
    art = wbtool.Artifact("versioned", "model")
    [entry] = art.add_reference(f"s3://{bucket}/m.bin")
    assert entry.extra is not None and entry.extra["version_id"]
    art.save()
    fs.pipe_file(f"{bucket}/m.bin", b"second, and longer")
    root = tmp_path / "out"
    load("versioned:v0").download(str(root))
    assert read_tree(root) == {"m.bin": b"first"}


def test_configured_remote_supplies_the_endpoint(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, store_dir: Path,
    tmp_path: Path,
) -> None:
    server = server_for(request, "s3")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    url = server.url()
    remote = open_remote(url, server.options)
    assert isinstance(remote, FsspecRemote)
    Prefix(server, url, remote).put("cfg/a.txt", b"via config")
    config.add(Store.open(store_dir), "team", f"s3://{BUCKET}/elsewhere", server.options)
    got = log_refs("via-remote", f"{url}/cfg/a.txt")
    root = tmp_path / "out"
    got.download(str(root))
    assert read_tree(root) == {"a.txt": b"via config"}


@pytest.mark.parametrize("key", ["../../escape.txt", "sub/../../escape.txt", "a//b.txt",
                                 "./dot.txt"])
def test_hostile_key_under_a_prefix_is_refused(s3: Prefix, tmp_path: Path, key: str) -> None:
    s3.put("tree/fine.txt", b"fine")
    s3.put(f"tree/{key}", b"evil")
    art = wbtool.Artifact("hostile", "dataset")
    with pytest.raises(UsageError, match="refused object"):
        art.add_reference(f"{s3.url}/tree")
    assert art.file_count == 0
    assert not list(tmp_path.rglob("escape.txt"))


def test_key_that_is_also_a_folder_is_refused(s3: Prefix) -> None:
    s3.put("clash/a", b"file")
    s3.put("clash/a/b", b"file under a")
    with pytest.raises(UsageError, match="both an object and a folder"):
        wbtool.Artifact("clash", "dataset").add_reference(f"{s3.url}/clash")


def test_download_leaves_an_identical_file_alone(s3: Prefix, tmp_path: Path) -> None:
    got = log_refs("same", s3.put("same.bin", b"same bytes"))
    root = tmp_path / "out"
    got.download(str(root))
    before = os.stat(root / "same.bin")
    got.download(str(root))
    after = os.stat(root / "same.bin")
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


# -- GCS specifics ---------------------------------------------------------------------


def test_gcs_generation_is_fetched_exactly(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = server_for(request, "gcs")
    _reach_from_env("gcs", server, monkeypatch)
    remote = open_remote(f"gs://{BUCKET}", server.options)
    assert isinstance(remote, FsspecRemote)
    bucket = f"versioned-{uuid.uuid4().hex[:12]}"
    remote.fs.mkdir(bucket, enable_versioning=True)
    remote.fs.pipe_file(f"{bucket}/g.bin", b"first")
    got = log_refs("generation", f"gs://{bucket}/g.bin")
    remote.fs.pipe_file(f"{bucket}/g.bin", b"second")
    root = tmp_path / "out"
    got.download(str(root))
    assert read_tree(root) == {"g.bin": b"first"}


# -- Azure https URLs ------------------------------------------------------------------


def test_azure_https_url_is_parsed_as_a_blob() -> None:
    loc = references.parse_object_uri(
        "https://acct.blob.core.windows.net/container/path/to/a%20b.txt")
    assert loc is not None
    assert (loc.scheme, loc.account, loc.bucket, loc.key) == (
        "az", "acct", "container", "path/to/a b.txt")
    assert loc.child("x y.txt") == "https://acct.blob.core.windows.net/container/x%20y.txt"
    assert references.parse_object_uri("https://example.com/container/a.txt") is None
    assert references.default_name(
        "https://acct.blob.core.windows.net/container/path/to/a%20b.txt") == "a b.txt"


def test_azure_https_url_of_another_account_is_refused(azure_server: Server) -> None:
    art = wbtool.Artifact("other-account", "dataset")
    with pytest.raises(UsageError, match="AZURE_STORAGE_CONNECTION_STRING"):
        art.add_reference("https://someoneelse.blob.core.windows.net/c/a.txt")
    [entry] = art.add_reference("https://someoneelse.blob.core.windows.net/c/a.txt",
                                checksum=False)
    assert entry.path == "a.txt"


# -- http(s) ---------------------------------------------------------------------------


@dataclass
class Site:
    """A real HTTP server on 127.0.0.1 serving ``files`` (path → body, ETag or None)."""

    base: str
    files: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)
    head_allowed: bool = True
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _headers(self) -> bytes | None:
            state.requests.append(f"{self.command} {self.path}")
            found = state.files.get(self.path.lstrip("/"))
            if found is None:
                self.send_error(404)
                return None
            body, etag = found
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            return body

        def do_HEAD(self) -> None:
            if not state.head_allowed:
                state.requests.append(f"HEAD {self.path}")
                self.send_error(405)
                return
            self._headers()

        def do_GET(self) -> None:
            body = self._headers()
            if body is not None:
                self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_http_with_etag_takes_one_head(site: Site, tmp_path: Path) -> None:
    site.files["d/data.csv"] = (b"a,b\n1,2\n", '"v1"')
    art = wbtool.Artifact("http-etag", "dataset")
    [entry] = art.add_reference(site.url("d/data.csv"))
    assert site.requests == ["HEAD /d/data.csv"]
    assert (entry.path, entry.size, entry.extra) == ("data.csv", 8, {"etag": '"v1"'})
    art.save()
    root = tmp_path / "out"
    load("http-etag:v0").download(str(root))
    assert read_tree(root) == {"data.csv": b"a,b\n1,2\n"}

    site.files["d/data.csv"] = (b"a,b\n3,4\n", '"v2"')
    with pytest.raises(VerificationError, match="changed since it was logged"):
        load("http-etag:v0").download(str(tmp_path / "again"))


def test_http_without_etag_hashes_the_body(site: Site, tmp_path: Path) -> None:
    body = os.urandom(3 << 20)  # several chunks
    site.files["blob.bin"] = (body, None)
    art = wbtool.Artifact("http-noetag", "dataset")
    [entry] = art.add_reference(site.url("blob.bin"), name="copy.bin")
    assert (entry.path, entry.size, entry.digest) == ("copy.bin", len(body), hash_bytes(body))
    assert entry.extra is None
    art.save()
    root = tmp_path / "out"
    load("http-noetag:v0").download(str(root))
    assert (root / "copy.bin").read_bytes() == body

    site.files["blob.bin"] = (body[:-1] + bytes([body[-1] ^ 1]), None)  # same size
    with pytest.raises(VerificationError, match="changed since it was logged"):
        load("http-noetag:v0").download(str(tmp_path / "again"))
    assert not (tmp_path / "again" / "copy.bin").exists()


def test_http_head_refused_falls_back_to_get(site: Site) -> None:
    site.head_allowed = False
    site.files["x.txt"] = (b"xyz", '"e"')
    [entry] = wbtool.Artifact("http-get", "dataset").add_reference(site.url("x.txt"))
    assert site.requests == ["HEAD /x.txt", "GET /x.txt"]
    assert (entry.size, entry.extra) == (3, {"etag": '"e"'})


def test_http_missing_url(site: Site, tmp_path: Path) -> None:
    art = wbtool.Artifact("http-missing", "dataset")
    with pytest.raises(NotFoundError):
        art.add_reference(site.url("nope.txt"))
    site.files["here.txt"] = (b"here", '"h"')
    site.files["later-gone.txt"] = (b"gone", '"g"')
    got = log_refs("http-missing", site.url("here.txt"), site.url("later-gone.txt"))
    del site.files["later-gone.txt"]
    with pytest.raises(NotFoundError):
        got.download(str(tmp_path / "strict"))
    root = tmp_path / "lenient"
    got.download(str(root), allow_missing_references=True)
    assert read_tree(root) == {"here.txt": b"here"}


def test_http_unreachable_is_a_clear_error() -> None:
    with pytest.raises(RemoteUnreachableError, match="unreachable"):
        wbtool.Artifact("http-down", "dataset").add_reference(
            f"http://127.0.0.1:{free_port()}/a.txt")
