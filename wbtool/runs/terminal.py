"""What a terminal would show: the line model behind ``output.log``.

The log of a console keeps what a terminal would *show*:

* ``\\r`` returns to column 0 and later characters overwrite, so a progress
  bar that redraws itself (tqdm, pip, rich) leaves only its last frame;
* colour and other escape sequences (CSI, OSC, DCS, two-byte ``ESC x``) are
  removed, even when split across writes;
* ``\\b`` moves one column back; erase-in-line (``ESC[K``, ``ESC[1K``,
  ``ESC[2K``) clears as a terminal would.

:class:`TerminalLog` models one line of a terminal, not a screen. Cursor
movement to another row (``ESC[A`` up, ``ESC[B`` down, ``ESC[E``/``ESC[F``,
``ESC[H``) ends the current logical line: a non-blank line is written out and
an empty one begins. Multi-line progress displays that redraw themselves by
moving the cursor up therefore leave each redrawn frame's rows in the log
(rich's live display, which erases before moving up, leaves every row but the
last once per refresh); nothing is lost, some is repeated. Columns count code points, not
terminal cells (a wide CJK character counts as one), which only matters when
a line is partly overwritten. Lines longer than :data:`MAX_LINE` characters
without a newline are written out in pieces without one, as a terminal would
wrap them.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import BinaryIO, cast

from wbtool.lazyre import lazy_compile

__all__ = ["MAX_LINE", "MAX_PENDING", "Chunk", "TerminalLog"]

#: What a sink is given: bytes, or a view of the bytes fed (no copy is made).
Chunk = bytes | memoryview

#: Longest line kept in memory; longer ones are written out in pieces.
MAX_LINE = 1 << 20
#: Longest unterminated escape sequence kept waiting for its end; a longer one
#: is taken as garbage and its ESC dropped.
MAX_PENDING = 4096
# How far the cursor may be moved past the end of the text (a terminal stops
# at its right edge; this keeps ``ESC[999999999C`` from filling memory).
_MAX_GAP = 1024

# Escape sequences that leave the line as it is (colours, modes, titles,
# hyperlinks, character sets), removed in one pass before the line model runs;
# also a stray ESC that nothing can follow. The CSI finals left out are those
# that move the cursor or erase, handled by ``TerminalLog._csi``.
_NOISE = lazy_compile(
    r"\x1b(?:\[[0-?]*[ -/]*[IL-OQ-WY-_a-eg-~]"  # CSI that does not move or erase
    r"|[\]PX^_].*?(?:\x07|\x1b\\)"  # OSC, DCS, SOS, PM, APC: up to BEL or ST
    r"|[ -/]+[0-~]|[0-OQ-WYZ\\`-~]"  # every other escape sequence
    r"|(?=[^ -~]))",  # ESC before a control or non-ASCII character: garbage
    re.DOTALL,
)
# What is left for the line model besides text, ``\r`` and ``\n``.
_TOKEN = lazy_compile(
    r"\x1b(?:\[([0-?]*)[ -/]*([@-~])|[\]PX^_].*?(?:\x07|\x1b\\)|[ -/]+[0-~]"
    r"|[0-OQ-WYZ\\`-~])?"
    r"|\x08",
    re.DOTALL,
)
# What an escape sequence cut off at the end of the text may still become.
_UNFINISHED = lazy_compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]PX^_][^\x07]*|[ -/]*)", re.DOTALL)


_CLEARS = ("\r\x1b[K", "\r\x1b[0K", "\r\x1b[2K")


def _skip_cleared(text: str) -> str:
    """``text`` less what a line-clearing ``\\r ESC[K`` on each line erases anyway.

    Progress bars that clear before each frame would otherwise cost a trip
    through the line model per frame. A line is only shortened when every
    escape sequence in the skipped part is such a clear, so no cursor
    movement is lost.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "\r\x1b[" not in line:
            continue
        end = max(line.rfind(clear) for clear in _CLEARS)
        if end > 0 and line.count("\x1b", 0, end) == sum(
                line.count(clear, 0, end) for clear in _CLEARS):
            lines[i] = line[end:]
    return "\n".join(lines)


def _overlay(segments: list[str]) -> str:
    """The line left by writing each segment from column 0 over the last."""
    last = segments[-1]
    if len(last) >= max(map(len, segments)):
        return last
    result = last
    for seg in reversed(segments[:-1]):
        if len(seg) > len(result):
            result += seg[len(result):]
    return result


class TerminalLog:
    """Turns a terminal byte stream into the lines a terminal would show.

    ``sink`` is a binary file (its ``write`` is used) or a callable taking
    bytes or a ``memoryview`` of them (:data:`Chunk`). Each finished line is
    written as UTF-8 ending in ``\\n``. Not thread-safe: callers serialise
    ``feed``. The sink is not closed by :meth:`close`; its owner does that.
    """

    def __init__(self, sink: BinaryIO | Callable[[Chunk], None]) -> None:
        write = getattr(sink, "write", None)
        self._write: Callable[[Chunk], object] = (
            write if write is not None else cast(Callable[[Chunk], None], sink)
        )
        self._sink = sink
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""
        self._col = 0
        self._pending = ""
        self._closed = False

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream (any split, UTF-8 or escapes)."""
        self.feed_rest(data, self.feed_plain(data))

    def feed_rest(self, data: bytes, done: int) -> None:
        """Take ``data`` past its first ``done`` bytes, which :meth:`feed_plain` took."""
        if done < len(data):
            self.feed_text(self._decoder.decode(data[done:] if done else data))

    def feed_plain(self, data: bytes) -> int:
        """Take the whole lines of plain text that ``data`` starts with, if any.

        Plain text, the bulk of most consoles, is written to the sink as it
        came: the unfinished line before it (if any), then ``data[:n]`` in
        one write, which is the last of this call. Returns ``n``, ``0`` when
        ``data`` does not start with a whole line of plain UTF-8 text; the
        caller passes the rest to :meth:`feed_rest` (:meth:`feed` does both).
        A recorder of the raw stream can point at those ``n`` bytes instead of
        keeping a copy.
        """
        if (self._pending or self._col != len(self._line) or self._closed
                or self._decoder.getstate()[0]):
            return 0
        end = len(data)
        for control in (b"\x1b", b"\r", b"\x08", b"\x07"):
            found = data.find(control, 0, end)
            if found >= 0:
                end = found
        cut = data.rfind(b"\n", 0, end) + 1
        if not cut or cut + len(self._line) >= MAX_LINE:
            return 0
        try:
            data.isascii() or data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            return 0
        if self._line:
            self._write(self._line.encode("utf-8", "replace"))
            self._line, self._col = "", 0
        self._write(data if cut == len(data) else memoryview(data)[:cut])
        return cut

    def feed_text(self, text: str) -> None:
        """Take the next already-decoded characters of the stream."""
        if self._closed:
            return
        if text == "\n" and not self._pending:  # print() ends a line on its own
            line, self._line, self._col = self._line, "", 0
            self._write((line + "\n").encode("utf-8", "replace"))
            return
        if self._pending:
            text = self._pending + text
            self._pending = ""
        if "\x1b" in text:
            text = _NOISE.sub("", text)
        if "\x07" in text:  # a bell; those ending an OSC went with it
            text = text.replace("\x07", "")
        if not text:
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if "\r\x1b[" in text:
                text = _skip_cleared(text)
        out: list[str] = []
        if "\x1b" in text or "\b" in text:
            self._parse(text, out)
        elif "\r" in text:
            if (text[0] == "\r" and "\n" not in text and text.find("\r", 1) < 0
                    and len(text) < MAX_LINE):  # a progress bar redrawn
                frame = text[1:]
                self._line = frame + self._line[len(frame):]
                self._col = len(frame)
                return
            self._plain(text, out)
        elif text[-1] == "\n" and not self._line and not self._col:
            out.append(text)  # whole lines of plain text, as they are
        elif ("\n" not in text and self._col == len(self._line)
              and self._col + len(text) < MAX_LINE):
            self._line += text  # more of the line, at its end
            self._col += len(text)
        else:
            self._plain(text, out)
        if out:
            self._write("".join(out).encode("utf-8", "replace"))

    def flush_partial(self) -> None:
        """Write out the unfinished last line, if any, ending it with ``\\n``."""
        if self._closed:
            return
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self.feed_text(tail)
        self._pending = ""
        if self._line:
            line, self._line, self._col = self._line, "", 0
            self._write((line + "\n").encode("utf-8", "replace"))

    def close(self) -> None:
        """Write the unfinished line, flush the sink, and ignore later input."""
        if self._closed:
            return
        self.flush_partial()
        self._closed = True
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    # -- the line model ----------------------------------------------------

    def _put(self, s: str, out: list[str]) -> None:
        """Write characters without control codes at the cursor."""
        if not s:
            return
        line, col = self._line, self._col
        n = len(line)
        if col == n:
            line += s
        elif col > n:
            line += " " * (col - n) + s
        else:
            line = line[:col] + s + line[col + len(s):]
        col += len(s)
        if col >= MAX_LINE and col >= len(line):
            out.append(line)
            line, col = "", 0
        self._line, self._col = line, col

    def _commit(self, out: list[str]) -> None:
        out.append(self._line + "\n")
        self._line, self._col = "", 0

    def _carriage_runs(self, piece: str, out: list[str]) -> None:
        """Apply text whose only control code is ``\\r`` to the current line."""
        if "\r" not in piece:
            self._put(piece, out)
            return
        segments = piece.split("\r")
        self._put(segments[0], out)
        rest = segments[1:]
        self._col = 0
        self._put(_overlay(rest), out)
        self._col = len(rest[-1])

    def _plain(self, text: str, out: list[str]) -> None:
        """Text with no escape or backspace: only ``\\n`` and ``\\r``."""
        last = text.rfind("\n")
        if last < 0:
            self._carriage_runs(text, out)
            return
        first = text.find("\n")
        if "\r" not in text:
            if self._line or self._col:
                self._put(text[:first], out)
                self._commit(out)
                out.append(text[first + 1:last + 1])
            else:
                out.append(text[:last + 1])
        else:
            self._carriage_runs(text[:first], out)
            self._commit(out)
            if last > first:
                middle = text[first + 1:last + 1]
                if "\r" not in middle:
                    out.append(middle)
                else:
                    for piece in middle[:-1].split("\n"):
                        out.append(_overlay(piece.split("\r")) + "\n")
        if last + 1 < len(text):
            self._carriage_runs(text[last + 1:], out)

    def _parse(self, text: str, out: list[str]) -> None:
        """Text with cursor movement, erasing or an unfinished escape sequence."""
        pos = 0
        for m in _TOKEN.finditer(text):
            start = m.start()
            if start > pos:
                self._plain(text[pos:start], out)
            pos = m.end()
            if text[start] == "\b":
                if self._col > 0:
                    self._col -= 1
            elif pos - start == 1:  # a lone ESC
                if (len(text) - start <= MAX_PENDING
                        and _UNFINISHED.fullmatch(text, start) is not None):
                    self._pending = text[start:]
                    return
            elif m.group(2) is not None:
                self._csi(m.group(1), m.group(2), out)
        if pos < len(text):
            self._plain(text[pos:], out)

    def _csi(self, params: str, final: str, out: list[str]) -> None:
        if final in "KJ":
            mode = _param(params, 0, 0)
            line, col = self._line, self._col
            if mode == 0:
                self._line = line[:col]
            elif mode == 1:
                self._line = " " * min(col + 1, len(line)) + line[col + 1:]
            else:
                self._line = ""
        elif final == "C":
            self._move(self._col + max(_param(params, 0, 1), 1))
        elif final == "D":
            self._move(self._col - max(_param(params, 0, 1), 1))
        elif final in "G`":
            self._move(_param(params, 0, 1) - 1)
        elif final == "X":
            n = max(_param(params, 0, 1), 1)
            line, col = self._line, self._col
            if col < len(line):
                end = min(col + n, len(line))
                self._line = line[:col] + " " * (end - col) + line[end:]
        elif final == "P":
            n = max(_param(params, 0, 1), 1)
            self._line = self._line[:self._col] + self._line[self._col + n:]
        elif final == "@":
            n = min(max(_param(params, 0, 1), 1), _MAX_GAP)
            if self._col < len(self._line):
                self._line = self._line[:self._col] + " " * n + self._line[self._col:]
        elif final in "ABEFHf":
            # Another row: end this logical line (see the module docstring).
            if self._line.strip():
                out.append(self._line + "\n")
            self._line = ""
            if final in "EF":
                self._col = 0
            elif final in "Hf":
                self._move(_param(params, 1, 1) - 1)

    def _move(self, col: int) -> None:
        """Put the cursor at ``col``, no further than :data:`_MAX_GAP` past the text."""
        self._col = max(min(col, len(self._line) + _MAX_GAP), 0)


def _param(params: str, index: int, default: int) -> int:
    """The ``index``-th numeric CSI parameter, or ``default``."""
    parts = params.lstrip("<=>?").split(";")
    if index >= len(parts):
        return default
    try:
        return int(parts[index].split(":")[0] or default)
    except ValueError:
        return default
