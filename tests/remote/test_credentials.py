"""What ``sync``, ``pull``, ``gc --remote`` and ``doctor --remote`` say when an
object store refuses the credentials, or none are found: one line naming the
remote, the service's short error code and where credentials come from,
never the server's XML body or request ids; exit code 6 (remote unreachable),
since the command and its options are right and the same call works on a
machine that has the credentials."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, Result, make_tree
from tests.remote.conftest import (
    AWS_ENV,
    AZURITE_KEY,
    BUCKET,
    FAST_FAIL,
    Server,
    _serve,
    free_port,
    server_for,
)

COMMANDS = [("sync", "--no-runs"), ("pull",), ("gc", "--remote", "team")]
AZURE_SOURCES = "set AZURE_STORAGE_CONNECTION_STRING, or the account name"
S3_SOURCES = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"


def _store(cli: Cli, tmp_path: Path, server: Server) -> tuple[dict[str, str], str]:
    """A store with one artifact and ``server`` as its default remote ``team``."""
    env = {"WBTOOL_DIR": str(tmp_path / "a" / ".wbtool")}
    url = server.url()
    src = make_tree(tmp_path / "src", {"f.txt": b"x\n"})
    cli("artifact", "log", "data", str(src), "--type", "dataset", env=env, check=True)
    args = ["remote", "add", "team", url, "--default"]
    for key, value in server.options.items():
        args += ["-o", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    cli(*args, env=env, check=True)
    return env, url


def _refusals(cli: Cli, env: dict[str, str], url: str) -> Iterator[tuple[str, Result]]:
    """Each command's result, and the line ``doctor --remote`` gives the remote."""
    for args in COMMANDS:
        yield " ".join(args), cli(*args, env=env)
    res = cli("doctor", "--remote", "team", "--json", env=env)
    assert res.code == 6, res.err
    [check] = [c for c in res.json()["result"]["checks"]  # type: ignore[index]
               if c["area"] == "remotes"]
    head = f"{url} (default): unreachable: "
    assert check["detail"].startswith(head), check["detail"]
    detail = check["detail"][len(head):]
    yield "doctor", Result(6, "", f"wbtool: error: remote {url} is unreachable: {detail}\n")


def _assert_one_line(name: str, res: Result, url: str, detail: str) -> None:
    assert res.code == 6, f"{name}: {res.err}"
    assert res.err.startswith(f"wbtool: error: remote {url} is unreachable: {detail}"), \
        f"{name}: {res.err}"
    assert res.err.count("\n") == 1, f"{name}: {res.err}"
    for noise in ("<", "RequestId", "Traceback", "invalid option"):
        assert noise not in res.err, f"{name}: {res.err}"


def test_azure_with_a_wrong_key_says_the_credentials_were_refused(
        request: pytest.FixtureRequest, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = server_for(request, "azure")
    env, url = _store(cli, tmp_path, server)
    conn = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       conn.replace(AZURITE_KEY, "d3Jvbmcga2V5"))
    for name, res in _refusals(cli, env, url):
        _assert_one_line(name, res, url, "Azure refused the credentials for account "
                                         "devstoreaccount1 (AuthorizationFailure)")


def test_azure_without_credentials_says_how_to_give_them(
        request: pytest.FixtureRequest, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = server_for(request, "azure")
    env, url = _store(cli, tmp_path, server)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    for name, res in _refusals(cli, env, url):
        _assert_one_line(name, res, url, f"no Azure credentials were found: {AZURE_SOURCES}")
    # A set but empty variable is no connection string either.
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "")
    res = cli("pull", env=env)
    _assert_one_line("pull", res, url, f"no Azure credentials were found: {AZURE_SOURCES}")


def test_s3_without_credentials_says_how_to_give_them(
        request: pytest.FixtureRequest, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = server_for(request, "s3")
    env, url = _store(cli, tmp_path, server)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for name, res in _refusals(cli, env, url):
        _assert_one_line(name, res, url, f"no S3 credentials were found: {S3_SOURCES}")


@pytest.fixture(scope="module")
def s3_with_auth() -> Iterator[tuple[Server, str]]:
    """A moto server of its own that checks signatures, with one IAM user's
    access key id (the user may do nothing, which no test here needs)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    script = Path(sys.executable).parent / "moto_server"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    key_id: list[str] = []

    def setup() -> None:
        import boto3

        kwargs = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        iam = boto3.client("iam", **kwargs)
        iam.create_user(UserName="someone")
        key_id.append(iam.create_access_key(UserName="someone")["AccessKey"]["AccessKeyId"])
        boto3.client("s3", **kwargs).create_bucket(Bucket=BUCKET)
        # From now on every request is checked.
        urllib.request.urlopen(urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0",
            headers={"Content-Type": "text/plain"})).close()

    for server in _serve("moto_server", [*cmd, "-H", "127.0.0.1", "-p", str(port)], port,
                         AWS_ENV, setup, "s3", {"endpoint_url": endpoint, **FAST_FAIL}):
        yield server, key_id[0]


@pytest.mark.parametrize("which", ["wrong secret", "unknown key"])
def test_s3_with_wrong_credentials_says_they_were_refused(
        s3_with_auth: tuple[Server, str], cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    server, key_id = s3_with_auth
    env, url = _store(cli, tmp_path, server)
    if which == "wrong secret":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        code = "SignatureDoesNotMatch"
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
        code = "InvalidAccessKeyId"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    for name, res in _refusals(cli, env, url):
        # A HEAD request's answer has no body, so no code: its status stands in.
        _assert_one_line(name, res, url, "S3 refused the credentials (")
        assert f"({code})" in res.err or "(HTTP 403)" in res.err, f"{name}: {res.err}"


def test_azure_refusing_a_request_says_why_in_one_line(
        request: pytest.FixtureRequest, cli: Cli, tmp_path: Path) -> None:
    """Any other refusal keeps the server's words and code, not its XML body."""
    server = server_for(request, "azure")
    env, _ = _store(cli, tmp_path, server)
    url = "az://ab/p"  # a container name shorter than Azure allows
    cli("remote", "add", "short", url, env=env, check=True)
    res = cli("pull", "--remote", "short", env=env)
    _assert_one_line("pull", res, url, "The specified resource name length is not within "
                                       "the permissible limits. (OutOfRangeInput)")
