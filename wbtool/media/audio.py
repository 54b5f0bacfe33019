"""``wbtool.Audio``: a sound clip logged to a run (a file in ``media/audio/``)
or added to an artifact.

It is made of the path of an audio file (WAV, MP3, OGG, FLAC, ..., whose
bytes are kept as they are) or of samples: a numpy array, a tensor or a list
of numbers in [-1, 1], one value per sample (mono) or one row of channels
per sample, ``(samples, channels)``. Samples are written as a 16-bit PCM WAV
file by the standard library's :mod:`wave`; values outside [-1, 1] are
clipped, NaN is silence. An array of uint8, int16 or int32 holds a WAV
file's own samples, over its type's whole range (as ``scipy.io.wavfile.read``
gives them, and as soundfile writes them).
"""

from __future__ import annotations

import io
import math
import numbers
from typing import Any

from wbtool.media.files import FileMedia, as_array, extension, number_field, read_source

FORMATS = ("wav", "mp3", "ogg", "oga", "flac", "m4a", "aac", "opus", "webm", "aiff", "aif")
MAX_CHANNELS = 32
# The integer samples of WAV files, as read by scipy.io.wavfile or soundfile:
# dtype name -> (the value of silence, the factor to 16 bits). They span
# their type's whole range, as a WAV file's do, rather than [-1, 1].
PCM_TYPES = {"uint8": (128, 256.0), "int16": (0, 1.0), "int32": (0, 1 / 65536)}
_SHAPES = "(samples,) or (samples, channels)"


class Audio(FileMedia):
    """A sound clip, as ``wandb.Audio``: ``Audio(samples, sample_rate=16000)``."""

    _log_type = "audio-file"
    _folder = "audio"
    _sequence_type = "audio"
    sample_rate: int | None
    duration: float | None

    def __init__(self, data_or_path: Any, sample_rate: int | None = None,
                 caption: Any = None) -> None:
        self._caption = caption
        source = read_source(data_or_path, "Audio", "audio")
        if source is not None:
            data, name = source
            fmt = extension(name or "", FORMATS)
            if fmt is None:
                raise ValueError(f"wbtool.Audio: cannot tell the format of {name or 'an open file'}"
                                 f": the name must end in .{', .'.join(FORMATS)}")
            self._bytes, self.format = data, fmt
            self.sample_rate = None if sample_rate is None else _rate(sample_rate)
            self.duration = None
            if fmt == "wav":
                self.sample_rate, self.duration = _wav_header(data, name or "the WAV file")
            return
        if sample_rate is None:
            raise ValueError("wbtool.Audio: sample_rate is needed for audio made of samples "
                             "(e.g. Audio(samples, sample_rate=16000))")
        rate = _rate(sample_rate)
        channels, frames, pcm = to_pcm(data_or_path)
        self._bytes = encode_wav(pcm, channels, rate)
        self.format = "wav"
        self.sample_rate = rate
        self.duration = frames / rate

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.sample_rate is not None:
            fields["sample_rate"] = self.sample_rate
        if self.duration is not None:
            fields["duration"] = self.duration
        return fields

    def _restore(self, meta: dict[str, Any]) -> None:
        self.sample_rate = number_field(meta, "sample_rate", int)
        self.duration = number_field(meta, "duration")

    @classmethod
    def _sequence_fields(cls, items: list[Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"sampleRates": [i.sample_rate for i in items],
                "durations": [i.duration for i in items]}

    def __repr__(self) -> str:
        seconds = "" if self.duration is None else f" {self.duration:.3g}s"
        return f"<Audio {self.format}{seconds}>"


def _rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, bool):
        value = float(sample_rate)
        if value.is_integer() and 1 <= value < 2**32:
            return int(value)
    raise ValueError(f"wbtool.Audio: sample_rate must be a whole number of samples per second "
                     f"(e.g. 16000), not {sample_rate!r}")


def _wav_header(data: bytes, name: str) -> tuple[int, float]:
    """(sample rate, duration in seconds) of a WAV file's bytes, read from its
    ``fmt `` and ``data`` chunks: any encoding (PCM, float, A-law, the
    extensible header of 24-bit and multichannel files), which the standard
    library's :mod:`wave` (PCM only) would refuse."""
    import struct

    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"wbtool.Audio: {name} is not a WAV file (it does not start "
                         "with a RIFF WAVE header)")
    pos, rate, align = 12, None, 0
    while pos + 8 <= len(data):
        chunk, (size,) = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)
        if chunk == b"fmt " and size >= 16 and pos + 24 <= len(data):
            _tag, _channels, rate, _rate, align = struct.unpack_from("<HHIIH", data, pos + 8)
        elif chunk == b"data" and rate is not None:
            if rate < 1 or align < 1:
                raise ValueError(f"wbtool.Audio: {name} gives a sample rate of {rate} and "
                                 f"{align} bytes a frame")
            body = min(size, len(data) - pos - 8)  # a stream's file may say more
            return rate, body // align / rate
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    raise ValueError(f"wbtool.Audio: {name} is not a WAV file: it has no "
                     f"{'data' if rate is not None else 'fmt'} chunk")


# -- samples ------------------------------------------------------------------------------

def to_pcm(data: Any) -> tuple[int, int, bytes]:
    """(channels, frames, 16-bit little-endian samples, interleaved) of an array,
    a tensor or a list of numbers in [-1, 1]."""
    array = as_array(data)
    if array is not None:
        return _array_pcm(array)
    if isinstance(data, (list, tuple)):
        return _list_pcm(data)
    raise ValueError(f"wbtool.Audio: cannot make audio of a {type(data).__name__} (give the "
                     "path of an audio file, or samples: a numpy array, a tensor or a list "
                     "of numbers in [-1, 1])")


def _check_shape(shape: tuple[int, ...]) -> int:
    """The channel count of samples of this shape; ValueError for others."""
    if len(shape) not in (1, 2):
        raise ValueError(f"wbtool.Audio: cannot make audio of shape {shape}: expected "
                         f"{_SHAPES}")
    if shape[0] == 0 or (len(shape) == 2 and shape[1] == 0):
        raise ValueError(f"wbtool.Audio: samples of shape {shape} hold no sound")
    channels = 1 if len(shape) == 1 else shape[1]
    if channels > MAX_CHANNELS:
        raise ValueError(f"wbtool.Audio: samples of shape {shape} would have {channels} "
                         f"channels (at most {MAX_CHANNELS}): give {_SHAPES}; is it the "
                         "transpose?")
    return channels


def _array_pcm(array: Any) -> tuple[int, int, bytes]:
    import numpy as np

    a = np.asarray(array)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"wbtool.Audio: samples must be numbers, not {a.dtype}")
    channels = _check_shape(tuple(int(n) for n in a.shape))
    if a.dtype.name in PCM_TYPES:  # WAV's own samples (scipy.io.wavfile.read gives them)
        zero, scale = PCM_TYPES[a.dtype.name]
        pcm = np.clip(np.floor((a.astype(np.float64) - zero) * scale), -32768, 32767)
        return channels, a.shape[0], pcm.astype("<i2").tobytes()
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    pcm = np.rint(np.clip(a, -1.0, 1.0) * 32767).astype("<i2")
    return channels, a.shape[0], pcm.tobytes()


def _list_pcm(samples: list[Any] | tuple[Any, ...]) -> tuple[int, int, bytes]:
    import array
    import sys

    rows = bool(samples) and isinstance(samples[0], (list, tuple))
    shape = (len(samples), len(samples[0])) if rows else (len(samples),)
    channels = _check_shape(shape)
    out = array.array("h")
    for row in samples:
        values = row if rows else (row,)
        if rows and (not isinstance(row, (list, tuple)) or len(row) != channels):
            got = f"{len(row)} values" if isinstance(row, (list, tuple)) else repr(row)
            raise ValueError(f"wbtool.Audio: the list is ragged: expected {channels} values "
                             f"per sample, found {got}")
        for v in values:
            out.append(_sample(v))
    if sys.byteorder == "big":
        out.byteswap()
    return channels, len(samples), out.tobytes()


def _sample(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"wbtool.Audio: samples must be numbers, not {v!r}")
    try:
        x = float(v)
    except OverflowError:  # an int too large for a float: far beyond full scale
        x = -1.0 if v < 0 else 1.0
    if math.isnan(x):
        return 0
    return round(min(1.0, max(-1.0, x)) * 32767)


def encode_wav(pcm: bytes, channels: int, sample_rate: int) -> bytes:
    """A 16-bit PCM WAV file of interleaved little-endian samples."""
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()
