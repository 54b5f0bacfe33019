from __future__ import annotations

import pytest

from wbtool.errors import InvalidNameError
from wbtool.names import (
    split_ref,
    validate_alias,
    validate_entry_path,
    validate_name,
    validate_type,
)


@pytest.mark.parametrize("good", ["mnist", "a.b-c_d", "V1.2", "x" * 128])
def test_valid_names(good: str) -> None:
    assert validate_name(good) == good


@pytest.mark.parametrize("bad", ["", "a/b", "a b", "..", ".", "é", "x" * 129, "a:b", "a\0b"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(bad)


@pytest.mark.parametrize("bad", ["job", "wbtool-history", "wandb-x"])
def test_reserved_types(bad: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        validate_type(bad)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("a.txt", "a.txt"), ("a//b/./c", "a/b/c"), ("données/é.txt", "données/é.txt"),
     ("dir/", "dir"), ("dir/.", "dir")],
)
def test_entry_paths_normalised(raw: str, clean: str) -> None:
    assert validate_entry_path(raw) == clean


@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../x", "a/../../x", "a/..", "a\\b", "C:/x", "a\0b", ".", "./"]
)
def test_entry_paths_refused(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_entry_path(bad)


def test_aliases_cannot_look_like_versions() -> None:
    with pytest.raises(InvalidNameError):
        validate_alias("v3")
    assert validate_alias("best") == "best"


def test_split_ref() -> None:
    assert split_ref("mnist") == (None, "mnist", None)
    assert split_ref("mnist:v3") == (None, "mnist", "v3")
    assert split_ref("proj/mnist:best") == ("proj", "mnist", "best")
    assert split_ref("ent/proj/mnist:latest") == ("proj", "mnist", "latest")
    for bad in ("a/b/c/d", "mnist:", "../x:v1"):
        with pytest.raises(InvalidNameError):
            split_ref(bad)
