"""The contract of :class:`wbtool.remote.fs.Remote`, run against every backend.

Each test gets a fresh, empty remote: a local folder, and a prefix of a bucket
on a real S3 server (moto). GCS (fake-gcs-server) and Azure (Azurite) join
the same suite later.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.remote.conftest import BUCKET, FAST_FAIL, Backend, free_port, server_for
from wbtool.errors import (
    EXIT_REMOTE_UNREACHABLE,
    EXIT_USAGE,
    InvalidNameError,
    MissingExtraError,
    NotFoundError,
    RemoteUnreachableError,
    UsageError,
)
from wbtool.remote import fs
from wbtool.remote.fs import FsspecRemote, Remote, open_remote, parse_url

# -- reading and writing --------------------------------------------------------------------


def test_round_trip(remote: Remote) -> None:
    assert not remote.exists("objects/ab/cdef")
    remote.write("objects/ab/cdef", b"hello")
    assert remote.read("objects/ab/cdef") == b"hello"
    assert remote.exists("objects/ab/cdef")
    remote.write("objects/ab/cdef", b"hello")  # overwriting an immutable object is harmless
    assert remote.read("objects/ab/cdef") == b"hello"

    big = os.urandom(3 << 20)
    remote.write("big.bin", big)
    assert remote.read("big.bin") == big
    remote.write("empty", b"")
    assert remote.read("empty") == b""
    remote.write("données/é ü.txt", "unicode ✓".encode())
    assert remote.read("données/é ü.txt") == "unicode ✓".encode()


def test_a_folder_is_no_file(remote: Remote) -> None:
    remote.write("a/b/c", b"x")
    assert not remote.exists("a/b")
    with pytest.raises(NotFoundError):
        remote.read("a/b")


def test_a_local_remote_never_follows_a_link_to_a_file(tmp_path: Path) -> None:
    """A link planted on a shared folder would hand a pull any file that the
    one pulling can read (and a later sync could send it back up)."""
    root = tmp_path / "remote"
    (root / "runs" / "r1" / "files").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_bytes(b"key")
    (root / "runs" / "r1" / "files" / "pw").symlink_to(secret)
    (root / "runs" / "r1" / "folder").mkdir()
    remote = open_remote(root.as_uri())
    for path in ("runs/r1/files/pw", "runs/r1/folder"):
        with pytest.raises(NotFoundError):
            remote.read(path)
        with pytest.raises(NotFoundError):
            remote.get_file(path, tmp_path / "got")
    assert not (tmp_path / "got").exists()


def test_list_one_prefix(remote: Remote, backend: Backend, monkeypatch: pytest.MonkeyPatch,
                         ) -> None:
    names = ["p/a/1", "p/a/b/2", "p/ab/3", "q/4", "top"]
    for name in names:
        remote.write(name, name.encode())
    calls: list[str] = []
    if isinstance(remote, fs.S3Remote):  # every request botocore makes is seen here
        remote.client.meta.events.register(
            "before-call.s3", lambda model, **kwargs: calls.append(model.name))
    elif backend.kind != "local":  # one listing, never a request per key
        assert isinstance(remote, FsspecRemote)
        filesystem = remote.fs
        find, info = filesystem.find, filesystem.info
        if isinstance(remote, fs.AzureRemote):  # adlfs's find also asks about the folder
            blobs = remote._list_blobs
            monkeypatch.setattr(remote, "_list_blobs",
                                lambda *a: calls.append("find") or blobs(*a))
            monkeypatch.setattr(filesystem, "find", lambda *a, **k: pytest.fail("adlfs's find"))
        else:
            monkeypatch.setattr(filesystem, "find",
                                lambda *a, **k: calls.append("find") or find(*a, **k))
        for method in ("exists", "isfile", "cat_file", "head"):
            monkeypatch.setattr(filesystem, method,
                                lambda *a, **k: pytest.fail("a request per key"))

        def bucket_info(path: str, **kwargs: Any) -> Any:
            # An empty listing is checked once against the bucket itself.
            assert path == BUCKET, "a request per key"
            calls.append("bucket")
            return info(path, **kwargs)

        monkeypatch.setattr(filesystem, "info", bucket_info)
    assert remote.list("p/a") == ["p/a/1", "p/a/b/2"]
    assert remote.list("p/a/") == ["p/a/1", "p/a/b/2"]
    assert remote.list("p") == ["p/a/1", "p/a/b/2", "p/ab/3"]
    assert remote.list() == sorted(names)
    assert remote.list("missing") == []
    assert remote.list("p/a/1") == ["p/a/1"]
    if backend.kind == "s3":  # S3 names a missing bucket in the listing's answer
        assert calls == ["ListObjectsV2"] * 6, calls
        assert isinstance(remote, fs.S3Remote) and remote._fs is None  # no s3fs needed
    elif backend.kind != "local":
        assert calls == ["find"] * 5 + ["bucket", "find"], calls


def test_a_rewrite_of_the_same_size_changes_the_stamp(remote: Remote) -> None:
    """Listing times come to the second on S3 and Azure: the stamp (entity tag,
    generation, inode) tells two writes of the same size apart."""
    remote.write("runs/r/summary.json", b'{"a": 1}')
    [(path, size, _mtime, first)] = remote.list_stamped("runs/r")
    remote.write("runs/r/summary.json", b'{"a": 2}')
    [(_path, _size, _mtime, second)] = remote.list_stamped("runs/r")
    assert (path, size) == ("runs/r/summary.json", 8) and first and second != first
    assert [entry[:3] for entry in remote.list_stamped("runs")] == remote.list_detail("runs")


def test_list_folders(remote: Remote, backend: Backend) -> None:
    for name in ["p/a/1", "p/a/b/2", "p/ab/3", "p/ab/c/d/4", "p/top", "q/5"]:
        remote.write(name, name.encode())
    assert remote.list_folders("p") == ["a", "ab"]
    assert remote.list_folders("p/ab") == ["c"]
    assert remote.list_folders("p/a/b") == []
    assert remote.list_folders("missing") == []
    assert remote.list_folders("") == ["p", "q"]
    remote.delete("p/ab/c/d/4")  # a folder of no files is none
    assert remote.list_folders("p/ab") == []


def test_put_and_get_files(remote: Remote, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    data = os.urandom(1 << 20)
    source.write_bytes(data)
    remote.put_file(source, "files/source.bin")
    assert remote.read("files/source.bin") == data

    target = tmp_path / "down" / "deeper" / "copy.bin"
    remote.get_file("files/source.bin", target)
    assert target.read_bytes() == data

    with pytest.raises(NotFoundError):
        remote.get_file("files/missing.bin", tmp_path / "down" / "missing.bin")
    assert sorted(os.listdir(tmp_path / "down" / "deeper")) == ["copy.bin"]
    assert not (tmp_path / "down" / "missing.bin").exists()

    with pytest.raises(NotFoundError, match="no-such-file"):
        remote.put_file(tmp_path / "no-such-file", "files/x")
    assert not remote.exists("files/x")


def test_a_large_file_goes_in_parts_and_comes_back_whole(remote: Remote,
                                                        tmp_path: Path) -> None:
    from wbtool.remote import s3parts

    source = tmp_path / "large.bin"
    # Not a whole number of parts: the last one is shorter.
    data = os.urandom(s3parts.THRESHOLD + s3parts.PART_SIZE // 2 + 12345)
    source.write_bytes(data)
    remote.put_file(source, "files/large.bin")
    target = tmp_path / "large.copy"
    remote.get_file("files/large.bin", target)
    assert target.read_bytes() == data
    assert remote.list_detail("files")[0][:2] == ("files/large.bin", len(data))


def test_large_files_to_a_store_that_takes_checksums_only_where_required(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from wbtool.remote import s3parts

    server = server_for(request, "s3")
    options = {**server.options, "config_kwargs": {
        **server.options.get("config_kwargs", {}),
        "request_checksum_calculation": "when_required"}}
    remote = open_remote(server.url(), options)
    source = tmp_path / "large.bin"
    data = os.urandom(s3parts.THRESHOLD)
    source.write_bytes(data)
    remote.put_file(source, "large.bin")
    assert remote.read("large.bin") == data


@pytest.mark.parametrize("config, env, signed", [
    ({}, {}, False),
    ({"request_checksum_calculation": "when_required"}, {}, True),
    ({}, {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED"}, True),
    ({"s3": {"payload_signing_enabled": True}}, {}, True),
], ids=["checksummed", "no-checksums", "no-checksums-from-env", "signing-asked-for"])
def test_uploads_carry_a_checksum_instead_of_a_signed_body(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        config: dict[str, object], env: dict[str, str], signed: bool) -> None:
    """Over plain http botocore signs every body with SHA-256 unless told not
    to; wbtool tells it not to where each upload carries a CRC32 that the
    server checks, and leaves it alone otherwise, or where the user asks."""
    from wbtool.remote import s3parts

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    server = server_for(request, "s3")
    options = {**server.options, "config_kwargs": {
        **server.options.get("config_kwargs", {}), **config}}
    remote = open_remote(server.url(), options)
    assert isinstance(remote, fs.S3Remote)
    sent: list[tuple[str, dict[str, str]]] = []
    remote.client.meta.events.register(
        "before-send.s3", lambda request, **kw: sent.append(
            (request.method, {k.lower(): v.decode() if isinstance(v, bytes) else v
                              for k, v in request.headers.items()})))
    remote.write("objects/small", b"small object")
    source = tmp_path / "large.bin"
    data = os.urandom(s3parts.THRESHOLD)
    source.write_bytes(data)
    remote.put_file(source, "objects/large")
    assert remote.read("objects/small") == b"small object"
    assert remote.read("objects/large") == data
    bodies = [h for method, h in sent if method == "PUT"]
    assert len(bodies) == 1 + s3parts.THRESHOLD // s3parts.PART_SIZE
    for headers in bodies:
        body_hash = headers["x-amz-content-sha256"]
        if signed:
            assert re.fullmatch(r"[0-9a-f]{64}", body_hash)
        else:
            assert body_hash == "UNSIGNED-PAYLOAD"
            assert "x-amz-checksum-crc32" in headers


def test_a_failed_upload_in_parts_leaves_nothing(request: pytest.FixtureRequest,
                                                 tmp_path: Path) -> None:
    """The server refuses to complete the upload (parts below S3's 5 MiB
    minimum): the upload is aborted, no object appears, no part is kept."""
    from wbtool.remote import s3parts

    server = server_for(request, "s3")
    remote = open_remote(server.url(), server.options)
    assert isinstance(remote, fs.S3Remote)
    client = remote.client
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(3 << 20))
    bucket, _, key = f"{remote.root}/files/large.bin".partition("/")
    with pytest.raises(Exception, match=r"EntityTooSmall|too small"):
        s3parts.upload(client, str(source), bucket, key, part_size=1 << 20)
    assert not remote.exists("files/large.bin")
    pending = client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    assert pending == []


def test_delete(remote: Remote) -> None:
    remote.write("a/x", b"1")
    remote.write("a/y", b"2")
    remote.delete("a/x")
    assert not remote.exists("a/x")
    assert remote.list("a") == ["a/y"]
    remote.delete("a/x")  # deleting what is absent is no error


def test_missing_key(remote: Remote, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        remote.read("versions/v1.json")
    assert "versions/v1.json" in str(info.value)
    assert not remote.exists("versions/v1.json")
    assert remote.list("versions") == []


# -- exclusive creation ---------------------------------------------------------------------

RECORD = 64 << 10


def _payload(i: int) -> bytes:
    return bytes([65 + i]) * RECORD


def test_create_exclusive(remote: Remote) -> None:
    assert remote.create_exclusive("versions/v1.json", b"first")
    assert not remote.create_exclusive("versions/v1.json", b"second")
    assert remote.read("versions/v1.json") == b"first"
    assert remote.list("versions") == ["versions/v1.json"]


def test_create_exclusive_race_between_threads(remote: Remote, backend: Backend) -> None:
    writers = 8
    payloads = [_payload(i) for i in range(writers)]
    start = threading.Barrier(writers + 2)
    results: list[bool | None] = [None] * writers
    seen: list[bytes] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            start.wait()
            results[i] = remote.create_exclusive("aliases/0001.json", payloads[i])
        except BaseException as e:  # reported below
            errors.append(e)

    def read() -> None:
        reader = backend.open()
        start.wait()
        while True:
            finished = done.is_set()
            try:
                seen.append(reader.read("aliases/0001.json"))
            except NotFoundError:
                pass
            except BaseException as e:
                errors.append(e)
                return
            if finished:
                return

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads[:writers]:
        t.join(60)
    done.set()
    for t in threads[writers:]:
        t.join(60)
    assert not errors, errors
    assert results.count(True) == 1, results
    assert results.count(False) == writers - 1
    winner = payloads[results.index(True)]
    assert remote.read("aliases/0001.json") == winner
    assert seen and all(record == winner for record in seen)  # complete, and only the winner's
    assert remote.list() == ["aliases/0001.json"]  # no temporary file left behind


_CHILD = f"""
import os, sys, time
from wbtool.remote.fs import open_remote
url, go, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
remote = open_remote(url)
while not os.path.exists(go):
    time.sleep(0.001)
print(remote.create_exclusive("versions/v7.json", bytes([65 + i]) * {RECORD}))
"""


def test_create_exclusive_race_between_processes(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    os.mkdir(url)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, url, str(go), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    time.sleep(0.3)  # let them import and wait
    go.touch()
    seen: list[bytes] = []
    remote = open_remote(url)
    while any(p.poll() is None for p in procs):
        try:
            seen.append(remote.read("versions/v7.json"))
        except NotFoundError:
            pass
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    results = [out.strip() for out, _ in outs]
    assert results.count("True") == 1, results
    assert results.count("False") == 7, results
    winner = _payload(results.index("True"))
    assert remote.read("versions/v7.json") == winner
    assert all(record == winner for record in seen)
    assert os.listdir(tmp_path / "remote" / "versions") == ["v7.json"]


# -- hostile paths are refused before any I/O -----------------------------------------------

HOSTILE = ["../x", "/abs", "a/../../b", "a/..", "..", "a\\..\\b", "a\0b"]
OPERATIONS: dict[str, Callable[[Remote, str, Path], Any]] = {
    "read": lambda r, p, tmp: r.read(p),
    "write": lambda r, p, tmp: r.write(p, b"x"),
    "create_exclusive": lambda r, p, tmp: r.create_exclusive(p, b"x"),
    "exists": lambda r, p, tmp: r.exists(p),
    "list": lambda r, p, tmp: r.list(p),
    "put_file": lambda r, p, tmp: r.put_file(tmp / "local.txt", p),
    "get_file": lambda r, p, tmp: r.get_file(p, tmp / "got.txt"),
    "delete": lambda r, p, tmp: r.delete(p),
}


@pytest.mark.parametrize("kind", ["local", "s3"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_hostile_paths_are_refused(kind: str, operation: str, tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_bytes(b"local")
    before = sorted(os.listdir(tmp_path))
    if kind == "local":
        remote = open_remote(str(tmp_path / "deep" / "remote"))
    else:  # nothing listens there: any request would fail as unreachable instead
        remote = open_remote(f"s3://{BUCKET}/p",
                             {"endpoint_url": f"http://127.0.0.1:{free_port()}", **FAST_FAIL})
    for path in HOSTILE:
        with pytest.raises(InvalidNameError):
            OPERATIONS[operation](remote, path, tmp_path)
    assert sorted(os.listdir(tmp_path)) == before  # no remote folder, nothing outside it


def test_empty_paths_are_refused_except_for_listing(remote: Remote) -> None:
    for call in (lambda: remote.read(""), lambda: remote.write("", b""),
                 lambda: remote.create_exclusive("", b""), lambda: remote.exists("")):
        with pytest.raises(InvalidNameError):
            call()
    assert remote.list("") == []


# -- failures of the backend ----------------------------------------------------------------

def test_unreachable_endpoint_fails_fast(tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_bytes(b"local")
    endpoint = f"http://127.0.0.1:{free_port()}"  # closed: connection refused
    remote = open_remote(f"s3://{BUCKET}/p", {"endpoint_url": endpoint, **FAST_FAIL})
    began = time.monotonic()
    for name, operation in sorted(OPERATIONS.items()):
        t = time.monotonic()
        with pytest.raises(RemoteUnreachableError) as info:
            operation(remote, "versions/v1.json", tmp_path)
        assert time.monotonic() - t < 5, name
        message = str(info.value)
        assert message.startswith(f"remote s3://{BUCKET}/p is unreachable: "), message
        assert "\n" not in message
        assert info.value.exit_code == EXIT_REMOTE_UNREACHABLE
    assert time.monotonic() - began < 20
    assert not (tmp_path / "got.txt").exists()


@pytest.mark.parametrize(("scheme", "fix"), [
    ("s3", "set the remote's endpoint_url option to where it runs"),
    ("gs", "set the remote's endpoint_url option to where it runs"),
    ("az", "point BlobEndpoint in AZURE_STORAGE_CONNECTION_STRING to where it runs")])
def test_a_closed_port_is_named_with_what_to_do(scheme: str, fix: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Azure told aiohttp's "Cannot connect to host … ssl:default [Connect call
    failed …]", S3 botocore's request URL with its query: neither what to do.
    GCS took half a minute to say it (gcsfs backs off between six tries)."""
    from tests.remote.conftest import AWS_ENV, azurite_env

    port = free_port()  # closed: connection refused
    options: dict[str, Any] = {**FAST_FAIL, "endpoint_url": f"http://127.0.0.1:{port}"}
    env = AWS_ENV
    if scheme == "az":
        env, options = azurite_env(port), {"retry_total": 0}
    elif scheme == "gs":  # gcsfs's own retries, with no option to set them
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "token": "anon"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    remote = open_remote(f"{scheme}://{BUCKET}/p", options)
    began = time.monotonic()
    with pytest.raises(RemoteUnreachableError) as info:
        remote.list("versions")
    assert time.monotonic() - began < 5
    assert str(info.value) == (f"remote {scheme}://{BUCKET}/p is unreachable: connection to "
                               f"127.0.0.1:{port} refused: start the server there, or {fix}")


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure"])
def test_missing_bucket_is_unreachable(kind: str, request: pytest.FixtureRequest,
                                       tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_bytes(b"local")
    server = server_for(request, kind)
    remote = open_remote(server.url("no-such-bucket"), server.options)
    for name, operation in sorted(OPERATIONS.items()):
        with pytest.raises(RemoteUnreachableError, match="does not exist") as info:
            operation(remote, "versions/v1.json", tmp_path)
        assert "\n" not in str(info.value), name


def test_missing_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = {**fs.BACKENDS, "zz": fs.Backend("wbtool_test_no_such_backend", "zz", "zz")}
    with pytest.raises(MissingExtraError) as info:
        open_remote("zz://bucket/prefix", {}, backends=backends)
    assert str(info.value) == "zz:// needs the optional backend: pip install 'wbtool[zz]'"
    assert info.value.exit_code == EXIT_USAGE
    with pytest.raises(MissingExtraError):
        fs.require_backend("zz://bucket", backends=backends)


@pytest.mark.parametrize("options", [{"no_such_option": 1}, {"config_kwargs": {"bogus": 1}}])
def test_invalid_options_are_a_usage_error(options: dict[str, Any]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    remote = open_remote(f"s3://{BUCKET}/p", {"endpoint_url": endpoint, **options})
    with pytest.raises(UsageError, match="invalid option for s3fs"):
        remote.read("x")


@pytest.mark.parametrize(("options", "words"), [
    ({"config_kwargs": "fast"}, "'config_kwargs' must be a mapping"),
    ({"endpoint_url": 999}, "'endpoint_url' must be text, not the number 999"),
    ({"anon": "yes"}, "'anon' must be true or false"),
])
def test_options_of_a_type_no_backend_takes_are_refused_when_opened(
    options: dict[str, Any], words: str
) -> None:
    with pytest.raises(UsageError, match=f"^remote s3://{BUCKET}/p: remote option {words}"):
        open_remote(f"s3://{BUCKET}/p", options)


def test_a_local_remote_takes_no_options() -> None:
    with pytest.raises(UsageError, match="takes no options"):
        open_remote("/tmp/remote", {"endpoint_url": "http://x"})


# -- URLs -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "canonical", "scheme", "root"), [
    ("s3://bucket/prefix/", "s3://bucket/prefix", "s3", "bucket/prefix"),
    ("S3://bucket", "s3://bucket", "s3", "bucket"),
    ("gs://b/a//c", "gs://b/a/c", "gs", "b/a/c"),
    ("az://container/p", "az://container/p", "az", "container/p"),
    ("abfs://container/p", "abfs://container/p", "abfs", "container/p"),
    ("file:///srv/share/", "/srv/share", "file", "/srv/share"),
    ("/srv/share/../x", "/srv/x", "file", "/srv/x"),
])
def test_urls_are_canonical(url: str, canonical: str, scheme: str, root: str) -> None:
    parsed = parse_url(url)
    assert (parsed.url, parsed.scheme, parsed.root) == (canonical, scheme, root)


def test_relative_paths_become_absolute(tmp_path: Path) -> None:
    assert parse_url("shared/remote").url == str(tmp_path / "work" / "shared" / "remote")


@pytest.mark.parametrize("url", ["", "s3://", "s3:///", "s3://b/../x", "s3://../x",
                                 "http://host/x", "ftp://x", "file://relative", "a\0b"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def test_local_temporary_files_are_not_listed(tmp_path: Path) -> None:
    remote = open_remote(str(tmp_path / "remote"), create=True)
    remote.write("versions/v1.json", b"{}")
    (tmp_path / "remote" / "versions" / ".v2.json.0123456789ab.tmp").write_bytes(b"partial")
    assert remote.list() == ["versions/v1.json"]


def test_importing_remotes_does_not_import_fsspec() -> None:
    code = ("import sys, wbtool.remote.fs, wbtool.remote.config, wbtool.cli.remote; "
            "print([m for m in ('fsspec', 's3fs', 'botocore') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == "[]"
