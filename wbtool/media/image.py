"""``wbtool.Image``: a picture logged to a run (a file in ``media/images/``)
or added to an artifact (the file beside its JSON document).

It is made of a numpy array or a tensor, a nested list of numbers, a Pillow
image, a matplotlib figure, or the path of a PNG, JPEG, GIF or BMP file
(whose bytes are kept as they are). Pixels are written as PNG by
:mod:`wbtool.media.png`, so the same pixels give the same file whether or not
Pillow is installed.
"""

from __future__ import annotations

import numbers
import os
import types
from typing import Any

from wbtool.flags import flag
from wbtool.media import png
from wbtool.media.files import FileMedia

MODES = {"L": 1, "RGB": 3, "RGBA": 4}
_SHAPES = "(H, W), (H, W, 1|3|4) or (1|3|4, H, W)"


class Image(FileMedia):
    """An image, as ``wandb.Image``: ``Image(pixels, caption="a cat")``."""

    _log_type = "image-file"
    _folder = "images"
    _sequence_type = "images/separated"
    _bytes: bytes
    format: str  # png, jpeg, gif or bmp
    width: int
    height: int

    def __init__(self, data_or_path: Any, mode: str | None = None, caption: Any = None,
                 grouping: int | None = None, classes: Any = None, boxes: Any = None,
                 masks: Any = None, file_type: str | None = None,
                 normalize: bool = True) -> None:
        normalize = flag(normalize, "normalize")
        if masks is not None:
            raise ValueError("wbtool.Image: masks are not supported yet; log each mask as an "
                             "image of its own")
        if mode is not None and mode not in MODES:
            raise ValueError(f"wbtool.Image: mode must be one of {', '.join(MODES)}, "
                             f"not {mode!r}")
        fmt = _file_type(file_type)
        self._caption = caption
        self._grouping = grouping
        self._classes = _plain(classes, "classes")
        self._boxes = _plain(boxes, "boxes")
        data = data_or_path
        if isinstance(data, Image):
            self._bytes, self.format = data._bytes, data.format
            self.width, self.height = data.width, data.height
            return
        if isinstance(data, (str, os.PathLike)) or _is_figure(data):
            if mode is not None:
                raise ValueError("wbtool.Image: mode applies to pixels and Pillow images, "
                                 "not to an image file or a figure")
            encoded = _read_file(os.fspath(data)) if isinstance(data, (str, os.PathLike)) \
                else _from_figure(data)
        elif _is_pil(data):
            encoded = _from_pil(data, mode, fmt or "png")
        else:
            width, height, channels, pixels = to_pixels(data, normalize)
            if mode is not None and MODES[mode] != channels:
                pixels = convert(pixels, channels, MODES[mode])
                channels = MODES[mode]
            encoded = png.encode_png(width, height, channels, pixels)
        if fmt is not None and png.sniff(encoded)[0] != fmt:
            encoded = _reencoded(encoded, fmt)
        self._bytes = encoded
        self.format, self.width, self.height = png.sniff(encoded)

    @classmethod
    def _from_file_bytes(cls, data: bytes, meta: dict[str, Any]) -> Image:
        """An image read back from an artifact: its bytes and its JSON document."""
        img = cls.__new__(cls)
        img._bytes = data
        img.format, img.width, img.height = png.sniff(data)
        img._caption = meta.get("caption")
        img._grouping = meta.get("grouping")
        img._classes = meta.get("classes")
        img._boxes = meta.get("boxes")
        return img

    @property
    def image(self) -> Any:
        """The image as a Pillow image (needs Pillow)."""
        import importlib
        import io

        return importlib.import_module("PIL.Image").open(io.BytesIO(self._bytes))

    def _fields(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"width": self.width, "height": self.height}
        for name, value in (("grouping", self._grouping), ("classes", self._classes),
                            ("boxes", self._boxes)):
            if value is not None:
                doc[name] = value
        return doc

    def _extension(self) -> str:
        return png.EXTENSIONS[self.format]

    @classmethod
    def _sequence_fields(cls, items: list[Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        """One width, height and format where every image shares it (as W&B
        records them); where they differ, each image's, in order."""
        row: dict[str, Any] = {}
        for name, names in (("width", "widths"), ("height", "heights"), ("format", "formats")):
            values = [d[name] for d in docs]
            if all(v == values[0] for v in values):
                row[name] = values[0]
            else:
                row[names] = values
        return row

    def __repr__(self) -> str:
        return f"<Image {self.format} {self.width}x{self.height}>"


def _file_type(file_type: str | None) -> str | None:
    if file_type is None:
        return None
    fmt = {"jpg": "jpeg"}.get(file_type.lower().lstrip("."), file_type.lower().lstrip("."))
    if fmt not in png.EXTENSIONS:
        raise ValueError(f"wbtool.Image: file_type must be png, jpg, gif or bmp, "
                         f"not {file_type!r}")
    return fmt


def _plain(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (boxes, classes)."""
    if value is None:
        return None
    from wbtool.runs.values import normalise

    try:
        return normalise(value, what)
    except ValueError as e:
        raise ValueError(f"wbtool.Image: {what} must be plain data (numbers, strings, lists, "
                         f"dicts): {e}") from None


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"wbtool.Image: no such image file: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"wbtool.Image: {path} is a folder, not an image file") from None
    png.sniff(data, path)  # refuses what is not an image
    return data


def _is_pil(data: Any) -> bool:
    return type(data).__module__.startswith("PIL.") and hasattr(data, "save")


def _from_pil(img: Any, mode: str | None, fmt: str) -> bytes:
    import io

    if mode is not None:
        img = img.convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, format={"jpeg": "JPEG"}.get(fmt, fmt.upper()))
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"wbtool.Image: Pillow cannot write this {img.mode} image as "
                         f"{fmt.upper()}: {e}") from None
    return buf.getvalue()


def _reencoded(data: bytes, fmt: str) -> bytes:
    """An image file's bytes written in another format, by Pillow."""
    import importlib
    import io

    try:
        PILImage = importlib.import_module("PIL.Image")
    except ImportError:
        raise ValueError(f"wbtool.Image: writing {fmt.upper()} needs Pillow (pip install "
                         "pillow); without it images are written as PNG") from None
    with PILImage.open(io.BytesIO(data)) as img:
        img.load()
        if fmt == "jpeg" and img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        return _from_pil(img, None, fmt)


def _is_figure(data: Any) -> bool:
    if isinstance(data, types.ModuleType):
        return data.__name__ == "matplotlib.pyplot"
    return type(data).__module__.startswith("matplotlib") and hasattr(data, "savefig")


def _from_figure(fig: Any) -> bytes:
    import io

    if isinstance(fig, types.ModuleType):  # matplotlib.pyplot: its current figure
        fig = fig.gcf()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- pixels -------------------------------------------------------------------------------

def to_pixels(data: Any, normalize: bool = True) -> tuple[int, int, int, bytes]:
    """(width, height, channels, 8-bit pixels) of an array, a tensor or a nested list."""
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a PyTorch tensor
        data = data.detach().cpu().numpy()
    elif type(data).__module__.startswith(("tensorflow", "jax")) and hasattr(data, "numpy"):
        data = data.numpy()
    if hasattr(data, "dtype") and hasattr(data, "shape"):
        return _array_pixels(data, normalize)
    if isinstance(data, (list, tuple)):
        return _list_pixels(data, normalize)
    raise ValueError(f"wbtool.Image: cannot make an image of a {type(data).__name__} (give a "
                     "numpy array, a tensor, a nested list of numbers, a Pillow image, a "
                     "matplotlib figure or the path of an image file)")


def _layout(shape: tuple[int, ...]) -> tuple[bool, int]:
    """(channels first?, channels) of an image's shape; ValueError for others."""
    if len(shape) == 2:
        layout = (False, 1)
    elif len(shape) == 3 and shape[2] in (1, 3, 4):
        layout = (False, shape[2])
    elif len(shape) == 3 and shape[0] in (1, 3, 4):
        layout = (True, shape[0])
    else:
        raise ValueError(f"wbtool.Image: cannot make an image of shape {tuple(shape)}: "
                         f"expected {_SHAPES}")
    if 0 in shape:
        raise ValueError(f"wbtool.Image: an image of shape {tuple(shape)} has no pixels")
    return layout


def _array_pixels(array: Any, normalize: bool) -> tuple[int, int, int, bytes]:
    import numpy as np

    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"wbtool.Image: pixels must be numbers, not {a.dtype}")
    first, channels = _layout(a.shape)
    if first:
        a = a.transpose(1, 2, 0)
    a = scaled(a, normalize)
    return a.shape[1], a.shape[0], channels, a.tobytes()


def scaled(array: Any, normalize: bool = True) -> Any:
    """A numpy array of numbers as 0..255 (uint8): NaN and infinities as 0;
    with ``normalize``, values below 0 stretched to 0..1 and values of at
    most 1 times 255; then clipped."""
    import numpy as np

    a = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if normalize:
        low = a.min()
        if low < 0:
            span = a.max() - low
            a = (a - low) / span if span > 0 else np.zeros_like(a)
        if a.max() <= 1.0:
            a = np.trunc(a * 255)
    return np.clip(a, 0, 255).astype(np.uint8)


def _list_pixels(rows: Any, normalize: bool) -> tuple[int, int, int, bytes]:
    shape: list[int] = []
    level: Any = rows
    while isinstance(level, (list, tuple)):
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    first, channels = _layout(tuple(shape))
    flat: list[float] = []
    _flatten(rows, shape, 0, flat)
    if first:  # (C, H, W) → (H, W, C)
        c, h, w = shape
        plane = h * w
        flat = [flat[k * plane + i] for i in range(plane) for k in range(c)]
        shape = [h, w, c]
    if normalize:
        low = min(flat)
        if low < 0:
            span = max(flat) - low
            flat = [(v - low) / span for v in flat] if span > 0 else [0.0] * len(flat)
        if max(flat) <= 1.0:
            flat = [float(int(v * 255)) for v in flat]
    pixels = bytes(0 if v <= 0 else 255 if v >= 255 else int(v) for v in flat)
    return shape[1], shape[0], channels, pixels


def _flatten(items: Any, shape: list[int], depth: int, out: list[float]) -> None:
    if depth == len(shape):
        if isinstance(items, numbers.Real):
            v = float(items)
            out.append(v if v - v == 0 else 0.0)  # NaN and ±inf: 0
            return
        raise ValueError(f"wbtool.Image: pixels must be numbers, not {items!r}")
    if not isinstance(items, (list, tuple)) or len(items) != shape[depth]:
        got = f"{len(items)} items" if isinstance(items, (list, tuple)) else repr(items)
        raise ValueError(f"wbtool.Image: the nested list is ragged: expected {shape[depth]} "
                         f"items at depth {depth + 1}, found {got}")
    for item in items:
        _flatten(item, shape, depth + 1, out)


def convert(pixels: bytes, have: int, want: int) -> bytes:
    """8-bit pixels of ``have`` channels as ``want`` channels (1: L, 3: RGB, 4: RGBA)."""
    n = len(pixels) // have
    if want == 1:  # luminance, ITU-R 601-2 (as Pillow's "L")
        r, g, b = (pixels[0::have], pixels[1::have], pixels[2::have]) if have >= 3 \
            else (pixels, pixels, pixels)
        return bytes((x * 299 + y * 587 + z * 114 + 500) // 1000
                     for x, y, z in zip(r, g, b, strict=True))
    out = bytearray(n * want)
    for k in range(3):
        out[k::want] = pixels[0::have] if have == 1 else pixels[k::have]
    if want == 4:
        out[3::4] = pixels[3::4] if have == 4 else b"\xff" * n
    return bytes(out)
