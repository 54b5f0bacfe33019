"""True-or-false arguments of the Python API, checked where they come in.

Python reads any non-empty string as true, so ``commit="no"`` or
``overwrite="False"`` would do the opposite of what it says: such a value
is refused with a TypeError naming the argument, never guessed at.

As in W&B, a whole number is taken for its truth (``commit=0`` is False,
``commit=1`` or ``np.int64(1)`` is True): anything with ``__index__`` that
is not text. Strings, bytes, floats and None (where None is not the
argument's default) are refused.
"""

from __future__ import annotations


def flag(value: object, name: str) -> bool:
    """``value`` as a bool: True or False, a NumPy bool, or a whole number
    (an int or NumPy int, read as ``bool(value)``), else TypeError naming the
    argument ``name``."""
    if value is True or value is False:
        return value
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"):
        return bool(value)
    if hasattr(kind, "__index__") and not isinstance(value, (str, bytes)):
        return bool(value.__index__())  # type: ignore[attr-defined]
    raise TypeError(f"{name} must be True or False, not {value!r}")


def optional_flag(value: object, name: str) -> bool | None:
    """:func:`flag`, with None (the argument's default) kept as None."""
    return None if value is None else flag(value, name)
