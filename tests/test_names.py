from __future__ import annotations

import json

import pytest

from wbtool.errors import InvalidNameError, OtherEntityError
from wbtool.hashing import hash_bytes
from wbtool.manifest import Manifest
from wbtool.names import (
    MAX_COMPONENT,
    MAX_PATH,
    MAX_VERSION,
    all_clean_entry_paths,
    is_clean_entry_path,
    parse_version,
    read_entry_path,
    split_ref,
    validate_alias,
    validate_entry_path,
    validate_name,
    validate_tag,
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


# Names of MAX_COMPONENT bytes of UTF-8 fit; one more byte does not.
FITTING = ["x" * 255, "é" * 127 + "x", "€" * 85, "😀" * 63 + "abc", "d/" + "x" * 255 + "/e",
           "/".join(["x" * 255] * 16), "é" * 127 + "/" + "é" * 127]
TOO_LONG = ["x" * 256, "é" * 128, "€" * 85 + "x", "😀" * 64, "d/" + "x" * 256 + "/e",
            "x" * 255 + "/" + "é" * 128, "x" * MAX_PATH]
NOT_UTF8 = ["\udcff.txt", "d/\ud800", "é\udfff", "\udcff" * 86]

PATH_SAMPLES = [
    "a.txt", "d/e/f", "données/é.txt", "a..b", "a/.hidden", ".hidden", "a.",
    "/".join(["x" * 255] * 16)[:MAX_PATH], "x" * (MAX_PATH + 1), "", "/etc/passwd", "../x",
    "a/../b", "a/..", "a\\b", "C:/x", "c:", "\n:x", "a:b", "ab:c", "a\0b", ".", "./", "./a",
    "a/.", "a/./b", "a//b", "dir/", "a/b/", ":", "::", "\0", "b/C:/x", *FITTING, *TOO_LONG,
    *NOT_UTF8,
]


@pytest.mark.parametrize("path", PATH_SAMPLES)
def test_all_clean_paths_judges_each_path_as_one_at_a_time(path: str) -> None:
    """The column check of a manifest's paths agrees with the one-path check,
    for a path alone and between clean neighbours (first, middle, last)."""
    one = is_clean_entry_path(path)
    for paths in ([path], [path, "n"], ["n", path, "m"], ["n", path]):
        assert all_clean_entry_paths(paths) is one, paths


def test_paths_that_are_not_utf8_are_refused_on_the_way_in_and_back() -> None:
    """A file name in another encoding (as Python decodes it), or a lone
    surrogate escaped in a manifest: no manifest can hold it as UTF-8."""
    for path in NOT_UTF8:
        for check in (validate_entry_path, read_entry_path):
            with pytest.raises(InvalidNameError, match="not valid UTF-8"):
                check(path)
        assert not all_clean_entry_paths(["a.txt", path])


def test_names_longer_than_a_filesystem_takes_are_refused_on_the_way_in() -> None:
    """No file could be written out under them; paths read back from a
    manifest are still taken, so that what an older wbtool stored stays
    readable."""
    assert MAX_COMPONENT == 255
    for path in FITTING:
        assert validate_entry_path(path) == path == read_entry_path(path)
    for path in TOO_LONG[:-1]:
        with pytest.raises(InvalidNameError, match="longer than 255 bytes"):
            validate_entry_path(path)
        with pytest.raises(InvalidNameError, match="longer than 255 bytes"):
            validate_entry_path(path + "//")  # the careful path too
        assert read_entry_path(path) == path
    assert not all_clean_entry_paths([f"d{i}/f.bin" for i in range(1000)] + ["é" * 128])
    # a store's manifests are read as they are (gc marks objects from them)
    digest = hash_bytes(b"x")
    for entries in ({"d/" + "é" * 128: {"digest": digest, "size": 1}},
                    {"d/" + "é" * 128: {"digest": digest, "size": 1, "extra": {"k": 1}},
                     "a": {"digest": digest, "size": 1}}):
        data = json.dumps({"entries": entries, "hash": "xxh3-128", "version": 1}).encode()
        assert set(Manifest.from_bytes(data).entries) == set(entries)


def test_all_clean_paths_of_many() -> None:
    assert all_clean_entry_paths([])
    assert all_clean_entry_paths([f"d{i}/f{i}.bin" for i in range(1000)])
    assert not all_clean_entry_paths(["a", 3])  # type: ignore[list-item]


def test_aliases_cannot_look_like_versions() -> None:
    for like in ("v3", "v0", "v00", "v007"):
        with pytest.raises(InvalidNameError):
            validate_alias(like)
    assert validate_alias("best") == "best"


def test_parse_version() -> None:
    assert parse_version("v0") == 0 and parse_version("v17") == 17
    for padded in ("v00", "v01", "v007", "v010"):  # a version number has no leading zeros
        assert parse_version(padded) is None, padded
    assert parse_version(f"v{MAX_VERSION}") == MAX_VERSION
    for huge in (f"v{MAX_VERSION + 1}", "v99999999999999999999", "v" + "9" * 5000):
        assert parse_version(huge) == MAX_VERSION + 1
    for other in ("v", "3", "v-1", "v1.0", "latest", "v\u0660", "v\uff11", "v\u00b2"):
        assert parse_version(other) is None, other


def test_split_ref() -> None:
    assert split_ref("mnist") == (None, "mnist", None)
    assert split_ref("mnist:v3") == (None, "mnist", "v3")
    assert split_ref("mnist:v03") == (None, "mnist", "v03")  # looked up, and not found
    assert split_ref("proj/mnist:best") == ("proj", "mnist", "best")
    assert split_ref("ent/proj/mnist:latest") == ("proj", "mnist", "latest")
    for bad in ("a/b/c/d", "mnist:", "../x:v1", "/proj/mnist"):
        with pytest.raises(InvalidNameError):
            split_ref(bad)
    assert split_ref("ent/proj/mnist:v1", "ent") == ("proj", "mnist", "v1")
    assert split_ref("proj/mnist:v1", "ent") == ("proj", "mnist", "v1")
    with pytest.raises(OtherEntityError, match="entity 'other' not found: this store's "
                                              "entity is 'ent'"):
        split_ref("other/proj/mnist:v1", "ent")


@pytest.mark.parametrize("bad", ["a\tb", "esc\x1b[31m", "del\x7f", "", "x" * 65, "nl\n"])
def test_tags_refuse_control_characters_and_odd_lengths(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_tag(bad)
    assert validate_tag("a tag, with spaces: ✓") == "a tag, with spaces: ✓"
