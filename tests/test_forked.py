"""A share of the work in a forked helper: answers, errors and interruption."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePosixPath

import pytest

from wbtool import forked

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _echo(value: object) -> object:
    return value


def _fail(path: str) -> None:
    os.stat(path)


def _nap(seconds: float) -> None:
    time.sleep(seconds)


def _run(fn: object, *args: object) -> object:
    job = forked.ForkedJob(fn, *args)  # type: ignore[arg-type]
    try:
        return job.result()
    finally:
        job.stop()


def test_plain_answers_come_back_whole() -> None:
    answer = [("written", 3, "a/b"), ("later", 0, "é")] * 1000
    assert _run(_echo, (answer, {"k": {1, 2}}, b"\0" * 70_000)) == (
        answer, {"k": {1, 2}}, b"\0" * 70_000)


def test_answers_marshal_cannot_write_come_back_by_pickle() -> None:
    assert _run(_echo, [PurePosixPath("a/b")]) == [PurePosixPath("a/b")]


def test_an_error_in_the_helper_is_raised_again(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _run(_fail, str(tmp_path / "missing"))


def test_stop_interrupts_a_helper_still_working() -> None:
    job = forked.ForkedJob(_nap, 60)
    pid = job._pid
    assert pid is not None
    started = time.monotonic()
    job.stop()
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: not left behind as a zombie
