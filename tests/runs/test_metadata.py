from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from wbtool.runs import metadata
from wbtool.runs.metadata import Metadata, collect, freeze, nvidia_gpus
from wbtool.runs.redact import REDACTED

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, check=True, env={**os.environ, **GIT_ENV},
    )
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository with a remote URL that carries credentials."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "train.py").write_text("print('hi')\n")
    (root / "src" / "model.py").write_text("x = 1\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", "https://user:secret@example.com/x.git")
    return root


def run_collect(cwd: Path, program: str | None = "train.py", args: list[str] | None = None,
                **kwargs: Any) -> Metadata:
    options: dict[str, Any] = {
        "root": None, "disable_git": False, "save_requirements": False,
        "disable_machine_info": False, **kwargs,
    }
    return collect(program=program, args=args or [], cwd=str(cwd), **options)


def test_clean_repo(repo: Path) -> None:
    meta = run_collect(repo)
    assert meta.doc["git"] == {
        "commit": git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "remote": "origin",
        "remote_url": "https://example.com/x.git",
        "dirty": False,
    }
    assert meta.diff_patch is None
    assert meta.doc["codePath"] == "train.py"
    assert "secret" not in json.dumps(meta.doc["git"])


def test_dirty_repo_records_the_patch(repo: Path) -> None:
    (repo / "src" / "model.py").write_text("x = 2\n")
    meta = run_collect(repo)
    assert meta.doc["git"]["dirty"] is True
    assert meta.diff_patch is not None
    assert "-x = 1" in meta.diff_patch and "+x = 2" in meta.diff_patch


def test_untracked_files_do_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    meta = run_collect(repo)
    assert meta.doc["git"]["dirty"] is False
    assert meta.diff_patch is None


def test_staged_new_file_is_dirty(repo: Path) -> None:
    (repo / "new.py").write_text("y = 1\n")
    git(repo, "add", "new.py")
    meta = run_collect(repo)
    assert meta.doc["git"]["dirty"] is True
    assert meta.diff_patch is not None and "+y = 1" in meta.diff_patch


def test_code_path_from_a_subfolder(repo: Path) -> None:
    meta = run_collect(repo / "src", program="model.py")
    assert meta.doc["codePath"] == "src/model.py"
    assert meta.doc["program"] == "model.py"
    assert meta.doc["git"]["commit"] == git(repo, "rev-parse", "HEAD")


def test_explicit_root(repo: Path, tmp_path: Path) -> None:
    meta = run_collect(tmp_path, program=None, root=str(repo))
    assert meta.doc["git"]["branch"] == "main"
    assert meta.doc["codePath"] is None


def test_packed_refs_and_detached_head(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "pack-refs", "--all")
    assert run_collect(repo).doc["git"]["commit"] == commit
    git(repo, "checkout", "-q", "--detach")
    info = run_collect(repo).doc["git"]
    assert info["commit"] == commit
    assert info["branch"] is None


def test_branch_upstream_remote(repo: Path) -> None:
    git(repo, "remote", "add", "fork", "git@example.com:me/x.git")
    git(repo, "config", "branch.main.remote", "fork")
    info = run_collect(repo).doc["git"]
    assert info["remote"] == "fork"
    assert info["remote_url"] == "git@example.com:me/x.git"


def test_git_config_parsing() -> None:
    text = (
        '# comment\n[core]\n\tbare = false\n[remote "my \\"fork\\""]\n'
        '\turl = "https://example.com/a b.git"\n\tfetch = +refs/*:refs/*\n'
        '[branch.dev]\n\tremote = up ; inline comment\n[Remote "origin"]\n\turl = x\n'
    )
    config = metadata._parse_git_config(text)
    assert config[("remote", 'my "fork"')]["url"] == "https://example.com/a b.git"
    assert config[("branch", "dev")]["remote"] == "up"
    assert config[("remote", "origin")]["url"] == "x"
    assert config[("core", "")]["bare"] == "false"


def test_linked_worktree(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(wt))
    (wt / "train.py").write_text("print('changed')\n")
    info = run_collect(wt).doc["git"]
    assert info["branch"] == "feature"
    assert info["commit"] == git(repo, "rev-parse", "HEAD")
    assert info["remote"] == "origin"
    assert info["dirty"] is True


def test_unborn_branch(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    info = run_collect(root).doc["git"]
    assert info["commit"] is None and info["branch"] == "main" and info["dirty"] is False
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    meta = run_collect(root)
    assert meta.doc["git"]["dirty"] is True
    assert meta.diff_patch is None


def test_not_a_repo_and_disable_git(repo: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    meta = run_collect(outside)
    assert "git" not in meta.doc
    assert meta.doc["codePath"] is None
    assert "git" not in run_collect(repo, disable_git=True).doc


def test_git_variables_do_not_redirect_the_dirty_check(repo: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "train.py").write_text("changed\n")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    meta = run_collect(repo)
    assert meta.doc["git"]["dirty"] is True
    assert meta.diff_patch is not None and "+changed" in meta.diff_patch


def test_git_missing_is_no_error(repo: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "train.py").write_text("changed\n")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    meta = run_collect(repo)
    assert meta.doc["git"]["dirty"] is None
    assert meta.doc["git"]["branch"] == "main"
    assert meta.diff_patch is None


def test_secrets_never_reach_the_document(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "HF_TOKEN": "hf-secret-value-1",
        "MY_SERVICE_PASSWORD": "pw-secret-value-2",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value-3",
        "DATABASE_URL": "postgres://app:db-secret-value-4@host/db",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("INNOCENT_SETTING", "plain-value")
    args = ["--api-key", "arg-secret-value-5", "--lr", "0.1", "--hf=hf-secret-value-1"]
    meta = run_collect(repo, args=args)
    text = json.dumps(meta.doc)
    assert "secret-value" not in text
    env = meta.doc["env"]
    assert env["HF_TOKEN"] == REDACTED
    assert env["INNOCENT_SETTING"] == "plain-value"
    assert env["DATABASE_URL"] == f"postgres://{REDACTED}@host/db"
    assert meta.doc["args"] == ["--api-key", REDACTED, "--lr", "0.1", f"--hf={REDACTED}"]


def test_document_fields(repo: Path) -> None:
    meta = run_collect(repo, args=["--epochs", "2"], started_at=1700000000.5)
    doc = meta.doc
    json.dumps(doc)
    assert doc["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert doc["executable"] == sys.executable
    assert doc["cwd"] == str(repo)
    assert doc["args"] == ["--epochs", "2"]
    assert doc["startedAt"] == "2023-11-14T22:13:20.500000Z"
    assert isinstance(doc["os"], str) and doc["os"]
    assert isinstance(doc["host"], str)
    assert doc["cpu_count_logical"] == os.cpu_count()
    assert doc["memory"]["total"] > 0
    assert doc["disk"]["/"]["total"] >= doc["disk"]["/"]["used"] > 0
    if sys.platform.startswith("linux"):
        assert doc["cpu_count"] is None or 0 < doc["cpu_count"] <= doc["cpu_count_logical"]
    assert isinstance(doc["gpu_count"], int)
    assert doc["gpu_count"] == len(doc["gpu_nvidia"])


def test_started_at_defaults_to_now(tmp_path: Path) -> None:
    started = run_collect(tmp_path).doc["startedAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", started)
    assert started[:4] == time.strftime("%Y", time.gmtime())


def test_disable_machine_info(tmp_path: Path) -> None:
    doc = run_collect(tmp_path, disable_machine_info=True).doc
    for key in ("cpu_count", "cpu_model", "memory", "disk", "gpu_count", "gpu_nvidia"):
        assert key not in doc
    assert doc["host"] is not None


def test_field_failures_are_swallowed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(metadata, "_cpu_model", boom)
    monkeypatch.setattr(metadata, "_os_string", boom)
    monkeypatch.setattr(metadata, "freeze", boom)
    monkeypatch.setattr(metadata, "_find_repo", boom)
    meta = run_collect(repo, save_requirements=True)
    assert meta.doc["cpu_model"] is None
    assert meta.doc["os"] is None
    assert meta.requirements is None
    assert "git" not in meta.doc


def test_requirements(tmp_path: Path) -> None:
    meta = run_collect(tmp_path, save_requirements=True)
    assert meta.requirements is not None
    lines = meta.requirements.splitlines()
    assert any(line.lower().startswith("pyyaml==") for line in lines)
    assert lines == sorted(lines, key=str.lower)
    assert all(re.fullmatch(r"[^=\s]+==\S+", line) for line in lines)
    assert run_collect(tmp_path).requirements is None


def test_freeze_reads_folder_names(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    (first / "PyYAML-6.0.1.dist-info").mkdir()
    (first / "nvidia_ml_py-12.535.dist-info").mkdir()
    (first / "Old_Pkg-1.2-py3.11.egg-info").mkdir()
    dev = first / "devpkg.egg-info"
    dev.mkdir()
    (dev / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: devpkg\nVersion: 0.3.dev1\n\n")
    (first / "noversion.egg-info").mkdir()
    (first / "not_a_dist").mkdir()
    (second / "pyyaml-5.0.dist-info").mkdir()
    (second / "zeta-1.0.dist-info").mkdir()
    text = freeze([str(first), str(tmp_path / "missing"), str(first / "x.zip"), str(second)])
    assert text == (
        "devpkg==0.3.dev1\nnvidia_ml_py==12.535\nOld_Pkg==1.2\nPyYAML==6.0.1\nzeta==1.0\n"
    )
    assert freeze([]) == ""


def test_no_nvml_means_no_gpus() -> None:
    gpus = nvidia_gpus()
    assert isinstance(gpus, list)
    if not (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")):
        assert gpus == []


class NVMLError(Exception):
    pass


def fake_pynvml(init_error: bool = False) -> types.SimpleNamespace:
    """Two H100s; the first reports its name as bytes, as old bindings do."""

    def init() -> None:
        if init_error:
            raise NVMLError("driver not loaded")

    def cores(handle: int) -> int:
        if handle == 1:
            raise NVMLError("not supported")
        return 16896

    return types.SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"NVIDIA H100" if h == 0 else "NVIDIA H100",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=80 << 30),
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}",
        nvmlDeviceGetNumGpuCores=cores,
    )


def test_gpus_through_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "_nvidia_driver_present", lambda: True)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    doc = run_collect(tmp_path).doc
    assert doc["gpu_count"] == 2
    assert doc["gpu_type"] == "NVIDIA H100"
    assert doc["gpu_nvidia"] == [
        {"name": "NVIDIA H100", "memory_total": 80 << 30, "uuid": "GPU-0", "cuda_cores": 16896},
        {"name": "NVIDIA H100", "memory_total": 80 << 30, "uuid": "GPU-1"},
    ]


def test_nvml_errors_mean_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "_nvidia_driver_present", lambda: True)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=True))
    doc = run_collect(tmp_path).doc
    assert (doc["gpu_count"], doc["gpu_type"], doc["gpu_nvidia"]) == (0, None, [])
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert nvidia_gpus() == []


def test_collect_is_fast(repo: Path) -> None:
    (repo / "train.py").write_text("changed\n")
    run_collect(repo, save_requirements=True)
    start = time.perf_counter()
    run_collect(repo, save_requirements=True)
    assert time.perf_counter() - start < 0.5
