"""``wbtool.Table``: rows and named columns, logged to a run as a JSON file in
``media/table/`` or added to an artifact as ``<name>.table.json``.

Cells are kept as given; when the table is written they are normalised as
``run.log`` normalises values, and an image in a cell is written too and
referenced by its dict (as are audio, video, pages and 3D objects).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from wbtool.flags import flag
from wbtool.hashing import hash_bytes
from wbtool.media.base import Media, is_run_target, write_run_file

LOG_MODES = ("IMMUTABLE", "MUTABLE", "INCREMENTAL")
DEFAULT_COLUMNS = ("Input", "Expected", "Predicted")  # the W&B SDK's, for a table of no columns
# Python types a dtype may name, by the kind of cell they stand for.
_DTYPE_KINDS: dict[type, str] = {bool: "bool", int: "number", float: "number", str: "str",
                                 list: "list", tuple: "list", dict: "dict"}


def _kind(value: Any) -> str | None:
    """What sort of value a cell holds, for the check that a column holds one sort."""
    from wbtool.media.image import Image

    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, Image):
        return "image"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "list"
    return type(value).__name__


class Table(Media):
    """A table, as ``wandb.Table``: ``Table(columns=["id", "pred"], data=[[1, "cat"]])``."""

    _log_type = "table"

    def __init__(self, columns: Sequence[str] | None = None, data: Any = None,
                 rows: Any = None, dataframe: Any = None, dtype: Any = None,
                 optional: bool | Sequence[bool] = True, allow_mixed_types: bool = False,
                 log_mode: str = "IMMUTABLE") -> None:
        if log_mode not in LOG_MODES:
            raise ValueError(f"log_mode must be one of {', '.join(LOG_MODES)}, not {log_mode!r}")
        if log_mode == "INCREMENTAL":
            raise ValueError('log_mode="INCREMENTAL" is not supported yet; each logged table '
                             "is written whole (IMMUTABLE or MUTABLE)")
        self.log_mode = log_mode
        self._mixed = flag(allow_mixed_types, "allow_mixed_types")
        if dataframe is None and _is_dataframe(data):
            dataframe, data = data, None
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = list(zip(*(dataframe[c].tolist() for c in dataframe.columns), strict=True))
        elif data is None:
            data = rows if rows is not None else []
        elif hasattr(data, "tolist") and hasattr(data, "shape"):  # a numpy array of rows
            data = data.tolist()
        if columns is None:
            columns = list(DEFAULT_COLUMNS)
        elif isinstance(columns, (str, bytes)):  # its characters are no column names
            raise TypeError(f"columns must be a list of column names, not {columns!r}")
        if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
            raise TypeError(f"data must be a list of rows, not {type(data).__name__}: "
                            f"{data!r:.80}")
        self.columns: list[str] = []
        for c in columns:
            if not isinstance(c, str):
                raise ValueError(f"column names must be strings, not {c!r}")
            if c in self.columns:
                raise ValueError(f"column {c!r} is named twice")
            self.columns.append(c)
        n = len(self.columns)
        self._optional = [flag(o, "optional") for o in _per_column(optional, n, "optional")]
        self._kinds: list[str | None] = [_dtype_kind(t) for t in _per_column(dtype, n, "dtype")]
        self.data: list[list[Any]] = []
        for row in data:
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                row = row.tolist() if hasattr(row, "tolist") else list(row)
            self.add_data(*row)

    # -- building -------------------------------------------------------------------
    def add_data(self, *data: Any) -> None:
        """Add a row: one value per column."""
        if len(data) != len(self.columns):
            raise ValueError(f"this table expects {len(self.columns)} values (columns "
                             f"{self.columns}), found {len(data)}")
        for i, value in enumerate(data):
            self._check(i, value)
        self.data.append(list(data))

    def _check(self, i: int, value: Any) -> None:
        kind = _kind(value)
        name = self.columns[i]
        if kind is None:
            if not self._optional[i]:
                raise ValueError(f"column {name!r} is not optional: it cannot hold None")
            return
        have = self._kinds[i]
        if have is None:
            if not self._mixed:
                self._kinds[i] = kind
        elif have != kind and not self._mixed:
            raise ValueError(f"column {name!r} holds {have} values; {value!r} is a {kind} "
                             "(pass allow_mixed_types=True to mix them)")

    def add_column(self, name: str, data: Any, optional: bool = False) -> None:
        """Add a column of values, one for each row."""
        optional = flag(optional, "optional")
        if not isinstance(name, str):
            raise ValueError(f"column names must be strings, not {name!r}")
        if name in self.columns:
            raise ValueError(f"the table already has a column {name!r}")
        values = data.tolist() if hasattr(data, "tolist") else list(data)
        if self.columns and len(values) != len(self.data):
            raise ValueError(f"column {name!r} has {len(values)} values; the table has "
                             f"{len(self.data)} rows")
        self.columns.append(name)
        self._optional.append(optional or any(v is None for v in values))
        self._kinds.append(None)
        try:
            for v in values:
                self._check(len(self.columns) - 1, v)
        except ValueError:
            self.columns.pop()
            self._optional.pop()
            self._kinds.pop()
            raise
        if not self.data:
            self.data = [[] for _ in values]
        for row, v in zip(self.data, values, strict=True):
            row.append(v)

    # -- reading --------------------------------------------------------------------
    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """A column's values, as a list (or a numpy array: ``convert_to="numpy"``)."""
        if name not in self.columns:
            raise ValueError(f"the table has no column {name!r} (columns: {self.columns})")
        i = self.columns.index(name)
        values = [row[i] for row in self.data]
        if convert_to is None:
            return values
        if convert_to != "numpy":
            raise ValueError(f'convert_to must be "numpy" or None, not {convert_to!r}')
        import numpy as np

        return np.array(values)

    def get_index(self) -> list[int]:
        """The rows' indexes: 0, 1, 2, ..."""
        return list(range(len(self.data)))

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Table.get_dataframe needs pandas: pip install pandas") from None
        return pd.DataFrame(columns=list(self.columns), data=[list(r) for r in self.data])

    @property
    def ncols(self) -> int:
        return len(self.columns)

    @property
    def nrows(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return self.columns == other.columns and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Table {self.nrows} rows x {self.ncols} columns>"

    # -- writing --------------------------------------------------------------------
    def _document(self, target: Any, key: str) -> dict[str, Any]:
        from wbtool.runs.values import _kept, _normalise

        cells = [[_kept(_normalise(v, key, 1, target)) for v in row] for row in self.data]
        return {"_type": "table", "columns": list(self.columns), "data": cells,
                "ncols": self.ncols, "nrows": self.nrows}

    def to_json(self, run_or_artifact: Any = None) -> dict[str, Any]:
        """The JSON document; given an artifact, images in cells are added to it."""
        target = run_or_artifact if hasattr(run_or_artifact, "new_file") else None
        return self._document(target, "table")

    def _to_row(self, target: Any, key: str) -> dict[str, Any]:
        if not is_run_target(target):
            return self.to_json(target)
        from wbtool.runs.values import JSON_SAFE, encode

        body = encode(self._document(target, key)).encode("utf-8", JSON_SAFE)
        row: dict[str, Any] = {"_type": "table-file", "digest": hash_bytes(body),
                               "size": len(body), "ncols": self.ncols, "nrows": self.nrows}
        rel = write_run_file(target, "table", key, body, "table.json")
        if rel is not None:
            row["path"] = rel
        return row


def from_document(doc: Mapping[str, Any], read: Callable[[str], bytes]) -> Table:
    """A table read back from its JSON document; ``read(path)``: a file's bytes
    (for the images its cells name)."""
    columns, data = doc.get("columns"), doc.get("data")
    if not isinstance(columns, list) or not isinstance(data, list):
        raise ValueError("not a table document: it needs a list of columns and a list of rows")
    return Table(columns=columns, data=[[_cell(v, read) for v in row] for row in data],
                 allow_mixed_types=True)


def _cell(value: Any, read: Callable[[str], bytes]) -> Any:
    """A cell's value: an image, audio, video, page or 3D object for the
    document of one (whose file the table names), else the value itself."""
    from wbtool.media.documents import FILE_DOCUMENTS, from_document

    if isinstance(value, dict) and value.get("_type") in FILE_DOCUMENTS \
            and isinstance(value.get("path"), str):
        return from_document(value, read)
    return value


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def _per_column(value: Any, n: int, what: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what} has {len(value)} items for {n} columns")
        return list(value)
    return [value] * n


def _dtype_kind(t: Any) -> str | None:
    if t is None:
        return None
    from wbtool.media.image import Image

    if t is Image:
        return "image"
    from wbtool.media.files import FileMedia

    if isinstance(t, type) and issubclass(t, FileMedia):  # Audio, Video, Html, Object3D
        return t.__name__
    if isinstance(t, type) and t in _DTYPE_KINDS:
        return _DTYPE_KINDS[t]
    raise ValueError(f"dtype must be a Python type (int, float, str, bool, list, dict) or a "
                     f"media type (wbtool.Image, Audio, Video, Html, Object3D), not {t!r}")
