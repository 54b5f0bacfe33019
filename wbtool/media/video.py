"""``wbtool.Video``: a clip logged to a run (a file in ``media/videos/``) or
added to an artifact.

It is made of the path (or an open file) of an MP4, WebM, GIF or OGG video,
whose bytes are kept as they are, or of frames: a numpy array or a tensor of
shape (time, channel, height, width), or (batch, time, channel, height,
width) for clips shown side by side in a grid (as the W&B SDK lays them
out), with 1, 3 or 4 channels. Frames are written as an animated GIF by
:mod:`wbtool.media.gif`; floats are scaled to 0..255 as ``wbtool.Image``
scales them.
"""

from __future__ import annotations

import numbers
from typing import Any

from wbtool.media.files import FileMedia, as_array, extension, number_field, read_source
from wbtool.media.image import scaled

FORMATS = ("gif", "mp4", "webm", "ogg")
DEFAULT_FPS = 4  # the W&B SDK's
_SHAPES = "(time, channel, height, width) or (batch, time, channel, height, width)"


class Video(FileMedia):
    """A video, as ``wandb.Video``: ``Video(frames, fps=4)`` or ``Video("clip.mp4")``."""

    _log_type = "video-file"
    _folder = "videos"
    _sequence_type = "videos"
    width: int | None
    height: int | None
    fps: float | None
    frames: int | None

    def __init__(self, data_or_path: Any, caption: Any = None, fps: float | None = None,
                 format: str | None = None) -> None:
        self._caption = caption
        fmt = _format(format)
        rate = _fps(DEFAULT_FPS if fps is None else fps)
        self.width = self.height = self.fps = self.frames = None
        source = read_source(data_or_path, "Video", "video")
        if source is not None:
            data, name = source
            from_name = extension(name or "", FORMATS)
            if from_name is None and fmt is None:
                where = f"{name} does not end" if name else "an open file without a name does not"
                raise ValueError(f"wbtool.Video: cannot tell the video's format: {where} in "
                                 f".{', .'.join(FORMATS)} (pass format=)")
            if from_name is not None and fmt is not None and from_name != fmt:
                raise ValueError(f"wbtool.Video: format={fmt!r} does not match the file's "
                                 f"extension .{from_name}")
            self._bytes, self.format = data, from_name or fmt or "gif"
            if self.format == "gif":
                from wbtool.media import png

                _, self.width, self.height = png.sniff(data, name or "the GIF file")
            return
        if fmt not in (None, "gif"):
            raise ValueError(f"wbtool.Video: writing frames as {fmt} needs a video encoder "
                             "wbtool does not have; format='gif' is available (or give the "
                             f"path of a {fmt} file)")
        from wbtool.media.gif import MAX_DELAY, encode_gif

        frames = to_frames(data_or_path)
        self.frames, self.height, self.width = (int(n) for n in frames.shape[:3])
        self.fps = rate
        # GIF delays are hundredths of a second, from 2 (what browsers show) to
        # 65535 (a frame of about 11 minutes, for fps below 0.0016)
        self._bytes = encode_gif(frames, min(MAX_DELAY, max(2, round(100 / rate))))
        self.format = "gif"

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name in ("width", "height", "fps", "frames"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields

    def _restore(self, meta: dict[str, Any]) -> None:
        for name in ("width", "height", "frames"):
            setattr(self, name, number_field(meta, name, int))
        self.fps = number_field(meta, "fps")

    def __repr__(self) -> str:
        size = "" if self.width is None else f" {self.width}x{self.height}"
        return f"<Video {self.format}{size}>"


def _format(format: str | None) -> str | None:
    if format is None:
        return None
    fmt = str(format).lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"wbtool.Video: format must be one of {', '.join(FORMATS)}, "
                         f"not {format!r}")
    return fmt


def _fps(fps: Any) -> float | int:
    if isinstance(fps, numbers.Real) and not isinstance(fps, bool) and 0 < float(fps) < 1e6:
        value = float(fps)
        return int(value) if value.is_integer() else value
    raise ValueError(f"wbtool.Video: fps must be a number of frames per second above 0, "
                     f"not {fps!r}")


def to_frames(data: Any) -> Any:
    """A uint8 array of shape (time, height, width, 3) of a video's frames:
    a batch laid out in a grid, floats scaled, grey repeated, alpha dropped."""
    array = as_array(data)
    if array is None:
        raise ValueError(f"wbtool.Video: cannot make a video of a {type(data).__name__} (give "
                         f"the path of a video file or a numpy array of frames, {_SHAPES})")
    import numpy as np

    v = np.asarray(array)
    if v.dtype.kind not in "biuf":
        raise ValueError(f"wbtool.Video: frames must be numbers, not {v.dtype}")
    shape = tuple(int(n) for n in v.shape)
    if v.ndim not in (4, 5) or shape[-3] not in (1, 3, 4):
        raise ValueError(f"wbtool.Video: cannot make a video of shape {shape}: expected "
                         f"{_SHAPES}, with 1, 3 or 4 channels")
    if 0 in shape:
        raise ValueError(f"wbtool.Video: frames of shape {shape} hold no pixels")
    if v.ndim == 4:
        v = v[None]
    if v.dtype != np.uint8:
        v = scaled(v)  # as wbtool.Image scales pixels
    v = _grid(v)  # (time, height, width, channels)
    if v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
    return np.ascontiguousarray(v[..., :3])


def _grid(v: Any) -> Any:
    """(batch, time, channel, height, width) as (time, rows*height, cols*width,
    channel): the batch padded with black clips to a power of two, laid out as
    the W&B SDK lays it out."""
    import numpy as np

    b, t, c, h, w = v.shape
    if b & (b - 1):
        pad = (1 << b.bit_length()) - b
        v = np.concatenate([v, np.zeros((pad, t, c, h, w), dtype=v.dtype)])
        b += pad
    rows = 1 << ((b.bit_length() - 1) // 2)
    cols = b // rows
    v = v.reshape(rows, cols, t, c, h, w).transpose(2, 0, 4, 1, 5, 3)
    return v.reshape(t, rows * h, cols * w, c)
