"""Reading the Prometheus text exposition format, and naming a series.

One sample a line::

    name{label="value",...} value [timestamp] [# exemplar]

Comment lines (``# HELP``, ``# TYPE``, ``# UNIT``, ``# EOF``) and blank lines
are skipped. Histograms and summaries arrive as their ``_bucket``, ``_sum``,
``_count`` and quantile samples, each a series of its own. Label values
unescape ``\\\\``, ``\\"`` and ``\\n``; values may be ``NaN``, ``+Inf`` or
``-Inf``. Timestamps and OpenMetrics exemplars are read past and dropped: a
reading is stamped when it is taken. The OpenMetrics 1.0 text format and the
quoted UTF-8 names of Prometheus 3 (``{"my.metric","a.b"="x"}``) read the
same way. A malformed line is skipped, not fatal.

A series is named the way PromQL writes it, with its labels sorted by name
and their values escaped as in the exposition format::

    http_requests_total{code="200",method="get"}

so the name is readable, is the same on every scrape and every machine
(whatever order the server printed the labels in), and maps back to the
label set without a lookup table.
"""

from __future__ import annotations

from wbtool.lazyre import lazy_compile

Labels = tuple[tuple[str, str], ...]  # sorted by label name
Sample = tuple[str, Labels, float]

_NAME = lazy_compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_IDENT = lazy_compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_CLOSE = lazy_compile(r"\s*\}")
# one label pair (or a quoted metric name) and the separator after it
_PAIR = lazy_compile(
    r'\s*(?:([a-zA-Z_][a-zA-Z0-9_]*)|"((?:[^"\\]|\\.)*)")'
    r'\s*(?:=\s*"((?:[^"\\]|\\.)*)"\s*)?(,|\})'
)
_ESCAPE = lazy_compile(r"\\(.)")
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def parse(text: str) -> list[Sample]:
    """Every well-formed sample in ``text``, in the order written."""
    out: list[Sample] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        try:
            sample = parse_line(line)
        except (ValueError, IndexError):
            continue
        if sample is not None:
            out.append(sample)
    return out


def parse_line(line: str) -> Sample | None:
    """One sample line; raises ValueError when it is malformed."""
    name = ""
    pos = 0
    if line[0] != "{":
        m = _NAME.match(line)
        if m is None:
            raise ValueError(f"no metric name: {line!r}")
        name, pos = m.group(), m.end()
    labels: dict[str, str] = {}
    brace = len(line) - len(line[pos:].lstrip(" \t"))  # blanks may come before "{"
    if brace < len(line) and line[brace] == "{":
        pos, quoted = _read_labels(line, brace + 1, labels)
        if quoted is not None:
            if name:
                raise ValueError(f"two metric names: {line!r}")
            name = quoted
    if not name:
        raise ValueError(f"no metric name: {line!r}")
    rest = line[pos:]
    if not rest[:1].isspace():
        raise ValueError(f"no value: {line!r}")
    fields = rest.split("#", 1)[0].split()  # value [timestamp]; exemplars dropped
    if not 1 <= len(fields) <= 2:
        raise ValueError(f"bad value: {line!r}")
    return name, tuple(sorted(labels.items())), float(fields[0])


def _read_labels(line: str, pos: int, labels: dict[str, str]) -> tuple[int, str | None]:
    """Reads ``a="x",b="y"}`` from ``pos`` into ``labels``; returns the end and a
    quoted metric name found among them."""
    quoted_name: str | None = None
    while True:
        close = _CLOSE.match(line, pos)
        if close is not None:
            return close.end(), quoted_name
        m = _PAIR.match(line, pos)
        if m is None:
            raise ValueError(f"bad labels: {line!r}")
        bare, quoted, value, sep = m.groups()
        key = bare if bare is not None else _unescape(quoted)
        if value is None:  # a quoted string alone: the metric's name
            if bare is not None or quoted_name is not None:
                raise ValueError(f"bad labels: {line!r}")
            quoted_name = key
        else:
            labels[key] = _unescape(value)
        pos = m.end()
        if sep == "}":
            return pos, quoted_name


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), text)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(name: str, labels: Labels) -> str:
    """``name`` alone, or ``name{a="x",b="y"}`` with the labels in sorted order."""
    if not labels:
        return name
    parts = []
    for key, value in sorted(labels):
        label = key if _IDENT.match(key) else f'"{_escape(key)}"'
        parts.append(f'{label}="{_escape(value)}"')
    return name + "{" + ",".join(parts) + "}"
