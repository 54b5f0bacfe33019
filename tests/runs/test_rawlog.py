"""``output.raw`` frames: inline bytes, and bytes kept once in ``output.log``."""

from __future__ import annotations

from pathlib import Path

from wbtool.runs import rawlog
from wbtool.runs.terminal import TerminalLog


def test_inline_and_log_frames_read_back(tmp_path: Path) -> None:
    (tmp_path / "output.log").write_bytes(b"first line\nsecond line\n")
    (tmp_path / "output.raw").write_bytes(
        rawlog.frame(1.5, "stdout", b"\x1b[1mbold\x1b[0m\r")
        + rawlog.log_header(2.0, "stderr", 12, 11)
        + rawlog.frame(2.5, "stdout", b"tail"))
    frames = list(rawlog.read_frames(tmp_path / "output.raw"))
    assert frames == [(1.5, "stdout", b"\x1b[1mbold\x1b[0m\r"), (2.0, "stderr", b"second line\n"),
                      (2.5, "stdout", b"tail")]


def test_a_frame_whose_bytes_are_not_in_the_log_yet_ends_the_record(tmp_path: Path) -> None:
    (tmp_path / "output.log").write_bytes(b"0123456789")
    (tmp_path / "output.raw").write_bytes(
        rawlog.log_header(1.0, "stdout", 4, 0) + rawlog.log_header(2.0, "stdout", 8, 6)
        + rawlog.frame(3.0, "stdout", b"later"))
    assert list(rawlog.read_frames(tmp_path / "output.raw")) == [(1.0, "stdout", b"0123")]
    (tmp_path / "output.log").unlink()
    assert list(rawlog.read_frames(tmp_path / "output.raw")) == []


def test_a_torn_frame_ends_the_record(tmp_path: Path) -> None:
    whole = rawlog.frame(1.0, "stdout", b"abc")
    (tmp_path / "output.raw").write_bytes(whole + rawlog.frame(2.0, "stdout", b"defgh")[:-3])
    assert list(rawlog.read_frames(tmp_path / "output.raw")) == [(1.0, "stdout", b"abc")]


def test_feed_plain_writes_leading_whole_lines_as_they_came() -> None:
    out: list[bytes] = []
    log = TerminalLog(out.append)
    assert log.feed_plain(b"no newline yet") == 0 and out == []
    log.feed(b"partial")
    data = b" line\nsecond\nthird \x1b[31mred\x1b[0m\nafter"
    assert log.feed_plain(data) == len(b" line\nsecond\n")
    assert [bytes(x) for x in out] == [b"partial", b" line\nsecond\n"]
    log.feed(data[len(b" line\nsecond\n"):])
    log.close()
    assert b"".join(out) == b"partial line\nsecond\nthird red\nafter\n"
    # Invalid UTF-8, or a line model in the middle of an escape: nothing taken.
    assert TerminalLog(out.append).feed_plain(b"\xff\xfe\n") == 0
    log = TerminalLog(out.append)
    log.feed(b"\x1b[3")
    assert log.feed_plain(b"1mred\n") == 0
