"""``wbtool.Histogram``: a distribution held in the history row itself, as
``{"_type": "histogram", "values": [counts], "bins": [edges]}``.

Lists are binned in pure Python, the way ``numpy.histogram`` bins them
(equal bins between the smallest and the largest value, the last bin closed),
so a list and the same numbers in an array give the same histogram.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable
from typing import Any

from wbtool.media.base import Media

MAX_BINS = 512  # the most the W&B SDK logs


def _bin_count(num_bins: Any) -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) \
            or num_bins < 1:
        raise ValueError(f"num_bins must be a whole number of at least 1, not {num_bins!r}")
    return min(int(num_bins), MAX_BINS)


def _as_array(sequence: Any) -> Any:
    """A numpy array of a tensor or an array; None for anything else."""
    if hasattr(sequence, "detach") and hasattr(sequence, "cpu"):  # a PyTorch tensor
        sequence = sequence.detach().cpu().numpy()
    elif type(sequence).__module__.startswith(("tensorflow", "jax")) \
            and hasattr(sequence, "numpy"):
        sequence = sequence.numpy()
    return sequence if hasattr(sequence, "dtype") and hasattr(sequence, "shape") else None


def _numbers(sequence: Any, out: list[float]) -> list[float]:
    """The numbers of a (nested) list, as floats."""
    if isinstance(sequence, (str, bytes)) or not isinstance(sequence, Iterable):
        raise ValueError(f"a histogram is made of a list of numbers, not {type(sequence).__name__}")
    for v in sequence:
        if isinstance(v, numbers.Real):
            out.append(float(v))
        elif isinstance(v, (list, tuple)):
            _numbers(v, out)
        else:
            raise ValueError(f"a histogram is made of numbers; {v!r} is not one")
    return out


def bin_values(sequence: Any, num_bins: int = 64) -> tuple[list[int], list[float]]:
    """(counts, edges) of the finite numbers of ``sequence``: ``num_bins``
    equal bins, ([], []) when it holds no finite number."""
    n = _bin_count(num_bins)
    array = _as_array(sequence)
    if array is not None:
        import numpy as np

        if array.dtype.kind not in "biuf":
            raise ValueError(f"a histogram is made of numbers, not an array of {array.dtype}")
        data = np.asarray(array, dtype=float).ravel()
        finite = data[np.isfinite(data)]
        if finite.size == 0:
            return [], []
        if not math.isfinite(float(finite.max()) - float(finite.min())):
            raise ValueError("the values span too wide a range to bin (its width overflows)")
        counts, edges = np.histogram(finite, bins=n)
        return counts.tolist(), edges.tolist()
    finite = [v for v in _numbers(sequence, []) if math.isfinite(v)]
    if not finite:
        return [], []
    return _bin(finite, n)


def _bin(data: list[float], n: int) -> tuple[list[int], list[float]]:
    lo, hi = min(data), max(data)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = hi - lo
    if not math.isfinite(width):
        raise ValueError("the values span too wide a range to bin (its width overflows)")
    step = width / n
    edges = [i * step + lo for i in range(n)] + [hi]
    counts = [0] * n
    for v in data:
        i = int((v - lo) / width * n)
        if i == n:
            i -= 1
        # as numpy does: mend an index that rounding put one bin off
        if v < edges[i]:
            i -= 1
        elif i != n - 1 and v >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return counts, edges


def histogram_doc(sequence: Any, num_bins: int = 64) -> dict[str, Any]:
    counts, edges = bin_values(sequence, num_bins)
    return {"_type": "histogram", "values": counts, "bins": edges}


class Histogram(Media):
    """A histogram of ``sequence`` in ``num_bins`` equal bins (at most 512:
    more is taken as 512, with a warning), non-finite values left out; or
    ``np_histogram=(counts, edges)`` as ``numpy.histogram`` returns them, taken
    as they are (more than 512 bins refused)."""

    _log_type = "histogram"
    MAX_LENGTH = MAX_BINS

    def __init__(self, sequence: Any = None, np_histogram: Any = None,
                 num_bins: int = 64) -> None:
        if np_histogram is not None:
            if sequence is not None:
                raise ValueError("give a Histogram either a sequence or np_histogram, not both")
            self.histogram, self.bins = _checked(np_histogram)
        elif sequence is None:
            raise ValueError("a Histogram needs a sequence of numbers or np_histogram")
        else:
            if _bin_count(num_bins) < num_bins:
                import warnings

                # shown once for each line that asks for too many (Python's default filter)
                warnings.warn(f"wbtool: Histogram(num_bins={num_bins}) asks for more than "
                              f"{MAX_BINS} bins, the most a histogram holds; it has {MAX_BINS}",
                              UserWarning, stacklevel=2)
            self.histogram, self.bins = bin_values(sequence, num_bins)

    def to_json(self, run_or_artifact: Any = None) -> dict[str, Any]:
        return {"_type": "histogram", "values": list(self.histogram), "bins": list(self.bins)}

    def _to_row(self, target: Any, key: str) -> dict[str, Any]:
        return self.to_json()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.histogram == other.histogram and self.bins == other.bins

    def __repr__(self) -> str:
        return f"<Histogram of {sum(self.histogram)} values in {len(self.histogram)} bins>"


def _checked(np_histogram: Any) -> tuple[list[Any], list[float]]:
    try:
        counts, edges = np_histogram
    except (TypeError, ValueError):
        raise ValueError("np_histogram must be a pair (counts, bin edges), as numpy.histogram "
                         "returns") from None
    counts = counts.tolist() if hasattr(counts, "tolist") else list(counts)
    edges = edges.tolist() if hasattr(edges, "tolist") else list(edges)
    if len(counts) > MAX_BINS:
        raise ValueError(f"a histogram holds at most {MAX_BINS} bins, not {len(counts)}")
    if len(edges) != len(counts) + 1:
        raise ValueError(f"np_histogram needs one more bin edge than counts: {len(counts)} "
                         f"counts, {len(edges)} edges")
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not float(c) >= 0:
            raise ValueError(f"histogram counts must be numbers of at least 0, not {c!r}")
    for e in edges:
        if isinstance(e, bool) or not isinstance(e, numbers.Real) or not math.isfinite(e):
            raise ValueError(f"histogram bin edges must be finite numbers, not {e!r}")
    if any(b < a for a, b in itertools.pairwise(edges)):
        raise ValueError("histogram bin edges must not decrease")
    return counts, [float(e) for e in edges]
