"""Walking a folder to add it: the same answer from one process or two."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import make_tree
from wbtool import forked
from wbtool.artifacts import ingest


def _walk_by_path(root: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], set[str]]:
    walked = ingest.walk_dir(root)
    by_rel = {rel: (local, walked.stat(i)) for i, (local, rel) in enumerate(walked.files)}
    assert len(by_rel) == len(walked.files)  # no file twice
    return by_rel, {why for _, why in walked.skipped}


def test_a_large_walk_shared_with_a_helper_finds_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"d{i}/sub{j}/f{k}.txt": f"{i}{j}{k}".encode()
             for i in range(6) for j in range(3) for k in range(4)}
    files["top.txt"] = b"top"
    root = make_tree(tmp_path / "data", files)
    os.symlink(root / "d0" / "sub0" / "f0.txt", root / "d5" / "inside-link")
    os.symlink(tmp_path, root / "d4" / "outside-link")
    serial, serial_skipped = _walk_by_path(root)

    started: list[object] = []

    class CountingJob(forked.ForkedJob):
        def __init__(self, *args: object) -> None:
            started.append(args)
            super().__init__(*args)

    monkeypatch.setattr(forked, "ForkedJob", CountingJob)
    monkeypatch.setattr(ingest, "WALK_SHARE_AFTER", 5)
    shared, shared_skipped = _walk_by_path(root)
    assert started, "the walk was expected to share its folders with a helper"
    assert shared == serial
    assert set(shared) == {*files, "d5/inside-link"}
    assert shared_skipped == serial_skipped == {"symlink points outside the folder"}
    again, _ = _walk_by_path(root)
    assert list(again) == list(shared)  # the same order every time
