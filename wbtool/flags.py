"""True-or-false arguments of the Python API, checked where they come in.

Python reads any non-empty string as true, so ``commit="no"`` or
``overwrite="False"`` would do the opposite of what it says: such a value
is refused with a TypeError naming the argument, never guessed at.
"""

from __future__ import annotations


def flag(value: object, name: str) -> bool:
    """``value`` as a bool: True or False (a NumPy bool too), else TypeError
    naming the argument ``name``."""
    if value is True or value is False:
        return value
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"):
        return bool(value)
    raise TypeError(f"{name} must be True or False, not {value!r}")


def optional_flag(value: object, name: str) -> bool | None:
    """:func:`flag`, with None (the argument's default) kept as None."""
    return None if value is None else flag(value, name)
