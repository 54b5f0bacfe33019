"""``wbtool.Object3D``: a 3D model or a point cloud logged to a run (a file in
``media/object3D/``) or added to an artifact.

It is made of the path (or an open file) of an OBJ, glTF, GLB, Babylon, STL
or ``.pts.json`` file, whose bytes are kept as they are, or of a point
cloud: a numpy array, a tensor or a list of points of shape (N, 3) (x, y,
z), (N, 4) (x, y, z, category) or (N, 6) (x, y, z, r, g, b), written as a
``.pts.json`` file (a JSON list of the points, as the W&B SDK writes it); or
of a scene, ``{"type": "lidar/beta", "points": ..., "boxes": [...],
"vectors": [...]}``, written as that JSON.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

from wbtool.media.files import FileMedia, as_array, extension, number_field, read_source

FORMATS = ("obj", "gltf", "glb", "babylon", "stl", "pts.json")
POINT_WIDTHS = (3, 4, 6)
SCENE_TYPES = ("lidar/beta",)
_SCENE_KEYS = ("type", "points", "boxes", "vectors")
_SHAPES = "(N, 3), (N, 4) or (N, 6)"


class Object3D(FileMedia):
    """A 3D object, as ``wandb.Object3D``: ``Object3D(open("mesh.obj"))``,
    ``Object3D(points)`` for a point cloud, or ``Object3D({"type": "lidar/beta",
    "points": points, "boxes": boxes})`` for a scene."""

    _log_type = "object3D-file"
    _folder = "object3D"
    _sequence_type = "object3D"
    points: int | None  # how many, for a point cloud made here

    def __init__(self, data_or_path: Any, caption: Any = None) -> None:
        self._caption = caption
        self.points = None
        source = read_source(data_or_path, "Object3D", "3D object")
        if source is not None:
            data, name = source
            fmt = extension(name or "", FORMATS)
            if fmt is None:
                what = repr(name) if name else "an open file without a name"
                raise ValueError(f"wbtool.Object3D: cannot tell the type of {what}: supported "
                                 f"are .{', .'.join(FORMATS)}")
            self._bytes, self.format = data, fmt
            return
        if isinstance(data_or_path, Mapping):
            content: Any = _scene(data_or_path)
            self.points = len(content["points"])
        else:
            content = to_points(data_or_path)
            self.points = len(content)
        self._bytes = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
        self.format = "pts.json"

    def _fields(self) -> dict[str, Any]:
        return {} if self.points is None else {"points": self.points}

    def _restore(self, meta: dict[str, Any]) -> None:
        self.points = number_field(meta, "points", int)

    def __repr__(self) -> str:
        count = "" if self.points is None else f" of {self.points} points"
        return f"<Object3D {self.format}{count}>"


def to_points(data: Any) -> list[list[float]]:
    """The rows of a point cloud, as lists of numbers; ValueError for others."""
    array = as_array(data)
    if array is not None:
        import numpy as np

        a = np.asarray(array)
        if a.dtype.kind not in "iuf":
            raise ValueError(f"wbtool.Object3D: points must be numbers, not {a.dtype}")
        _check_shape(tuple(int(n) for n in a.shape))
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError("wbtool.Object3D: points must be finite numbers (not NaN or "
                             "infinity)")
        rows: list[list[float]] = a.tolist()
        return rows
    if isinstance(data, (list, tuple)):
        width = len(data[0]) if data and isinstance(data[0], (list, tuple)) else 0
        _check_shape((len(data), width) if width else (len(data),))
        out = []
        for row in data:
            if not isinstance(row, (list, tuple)) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, (list, tuple)) else repr(row)
                raise ValueError(f"wbtool.Object3D: the list is ragged: expected {width} "
                                 f"values per point, found {got}")
            out.append([_number(v) for v in row])
        return out
    raise ValueError(f"wbtool.Object3D: cannot make a 3D object of a {type(data).__name__} "
                     f"(give the path or an open file of a .{', .'.join(FORMATS)} file, or "
                     f"points of shape {_SHAPES})")


def _scene(scene: Mapping[str, Any]) -> dict[str, Any]:
    """A scene's JSON: its type, points, boxes and vectors (as the W&B SDK writes it)."""
    kind = scene.get("type")
    if kind not in SCENE_TYPES:
        raise ValueError(f"wbtool.Object3D: a scene's \"type\" must be "
                         f"{' or '.join(map(repr, SCENE_TYPES))}, not {kind!r}")
    unknown = sorted(str(k) for k in scene if k not in _SCENE_KEYS)
    if unknown:
        raise ValueError(f"wbtool.Object3D: a scene holds {', '.join(_SCENE_KEYS)}; not "
                         f"{', '.join(unknown)}")
    from wbtool.runs.values import normalise

    doc: dict[str, Any] = {"type": kind}
    for key in ("vectors", "points", "boxes"):
        value = scene.get(key)
        if value is None:
            doc[key] = []
        elif key == "points":
            doc[key] = to_points(value)
        else:
            items = value.tolist() if hasattr(value, "tolist") else value
            if not isinstance(items, (list, tuple)) \
                    or not all(isinstance(i, Mapping) for i in items):
                raise ValueError(f"wbtool.Object3D: a scene's {key} must be a list of dicts")
            try:
                doc[key] = normalise(list(items), key)
                json.dumps(doc[key], allow_nan=False)
            except ValueError as e:
                raise ValueError(f"wbtool.Object3D: a scene's {key} must be plain data: "
                                 f"{e}") from None
    return doc


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2 or shape[1] not in POINT_WIDTHS:
        raise ValueError(f"wbtool.Object3D: cannot make a point cloud of shape {shape}: "
                         f"expected {_SHAPES}")
    if shape[0] == 0:
        raise ValueError(f"wbtool.Object3D: a point cloud of shape {shape} has no points")


def _number(v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not _finite(v):
        raise ValueError(f"wbtool.Object3D: points must be finite numbers, not {v!r}")
    return int(v) if isinstance(v, numbers.Integral) else float(v)


def _finite(v: numbers.Real) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False
