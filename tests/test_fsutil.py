"""fsutil.new_file: a new file appears whole under its name, or not at all."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wbtool import fsutil


@pytest.fixture(params=["unnamed", "named"])
def naming(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of writing: unnamed temporary files (O_TMPFILE), and named
    ones beside the target, as on a system without them."""
    if request.param == "named":
        monkeypatch.setattr(fsutil, "_proc_fds", False)
    else:
        fd = fsutil._open_unnamed(".", 0o644)
        if fd is None:
            pytest.skip("no unnamed temporary files here")
        os.close(fd)
    return str(request.param)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "folder"
    made.mkdir()
    return made


def test_a_new_file_takes_its_name_only_once_written(folder: Path, naming: str) -> None:
    target = folder / "f.bin"
    with fsutil.new_file(target) as fd:
        os.write(fd, b"half")
        seen = sorted(os.listdir(folder))
        os.write(fd, b" and the rest")
    assert target.read_bytes() == b"half and the rest"
    assert os.listdir(folder) == ["f.bin"]
    assert "f.bin" not in seen
    assert all(fsutil.is_tmp_name(name) for name in seen)
    assert len(seen) == (naming == "named")
    assert target.stat().st_mode & 0o777 == 0o644 & ~_umask()


def test_a_new_file_never_replaces_one_there(folder: Path, naming: str) -> None:
    target = folder / "f.bin"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError) as caught, fsutil.new_file(target) as fd:
        os.write(fd, b"second")
    assert caught.value.filename == str(target)
    assert target.read_bytes() == b"first"
    assert os.listdir(folder) == ["f.bin"]


def test_a_new_file_whose_writing_fails_leaves_nothing(folder: Path, naming: str) -> None:
    with pytest.raises(KeyboardInterrupt), fsutil.new_file(folder / "f.bin") as fd:
        os.write(fd, b"half")
        raise KeyboardInterrupt
    assert os.listdir(folder) == []



def test_a_new_file_that_cannot_be_made_is_named_in_the_error(folder: Path, naming: str) -> None:
    """The error names the file asked for, not the folder an unnamed file
    is opened in, nor a temporary name the user never chose."""
    target = folder / "missing" / "f.bin"
    with pytest.raises(FileNotFoundError) as caught, fsutil.new_file(target):
        pass
    assert caught.value.filename == str(target)


def _no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the folder act as a filesystem without hard links."""
    def link(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(fsutil, "_proc_fds", False)
    monkeypatch.setattr(os, "link", link)


def test_without_hard_links_a_new_file_takes_its_name_by_rename(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_hard_links(monkeypatch)
    target = folder / "f.bin"
    with fsutil.new_file(target) as fd:
        os.write(fd, b"whole")
    assert target.read_bytes() == b"whole"
    assert os.listdir(folder) == ["f.bin"]
    target.unlink()
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError), fsutil.new_file(target) as fd:
        os.write(fd, b"second")
    assert target.read_bytes() == b"first"
    assert os.listdir(folder) == ["f.bin"]


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2 is Linux's")
def test_without_hard_links_a_file_made_meanwhile_is_not_replaced(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process makes the file right after a check that it is absent,
    before the rename: the rename must not replace it."""
    _no_hard_links(monkeypatch)
    target = folder / "f.bin"
    real_lexists = os.path.lexists
    made: list[bool] = []

    def lexists(path: object) -> bool:
        seen = real_lexists(path)  # type: ignore[arg-type]
        if os.fspath(path) == str(target) and not seen:  # type: ignore[arg-type]
            target.write_bytes(b"theirs")  # made right after the check
            made.append(True)
        return seen

    monkeypatch.setattr(os.path, "lexists", lexists)
    try:
        with fsutil.new_file(target) as fd:
            os.write(fd, b"ours")
    except FileExistsError as e:
        assert e.filename == str(target)
    else:  # named before anyone else made it (no check to race)
        assert not made, "the file made meanwhile was replaced"
        assert target.read_bytes() == b"ours"
        assert os.listdir(folder) == ["f.bin"]
        target.write_bytes(b"theirs")
        with pytest.raises(FileExistsError), fsutil.new_file(target) as fd:
            os.write(fd, b"ours again")
    assert target.read_bytes() == b"theirs"
    assert os.listdir(folder) == ["f.bin"]


def test_temp_names_are_recognised() -> None:
    assert fsutil.is_tmp_name(os.path.basename(fsutil.tmp_name("/x", "model.safetensors")))
    assert fsutil.is_tmp_name(os.path.basename(fsutil.tmp_name("/x", "n" * 100)))
    for name in ("a.tmp", ".a.tmp", ".a.0123456789AB.tmp", ".a.0123456789a.tmp", "a.bin",
                 "x.0123456789ab.tmp", ".a.0123456789ab.tmp.bin"):
        assert not fsutil.is_tmp_name(name), name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_ENTER = "import sys; from wbtool import fsutil; print(fsutil.FolderWriters(sys.argv[1]).alone)"


def _enter(folder: Path) -> subprocess.Popen[str]:
    """Another process marking itself a writer into ``folder``: prints whether it was alone."""
    return subprocess.Popen([sys.executable, "-c", _ENTER, str(folder)], stdout=subprocess.PIPE,
                            text=True)


def test_a_folder_writer_is_alone_only_while_no_other_writes_there(tmp_path: Path) -> None:
    writers = fsutil.FolderWriters(tmp_path)
    assert writers.alone
    other = _enter(tmp_path)
    time.sleep(0.3)
    assert other.poll() is None  # waits while the first is alone (removing leftovers)
    writers.share()
    assert other.communicate(timeout=30)[0].strip() == "False"  # the first still writes
    assert not writers.alone
    writers.close()
    assert _enter(tmp_path).communicate(timeout=30)[0].strip() == "True"
