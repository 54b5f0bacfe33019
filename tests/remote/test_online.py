"""``mode="online"``: a finished run is pushed to the default remote by a
detached ``wbtool sync``, so finishing never waits for the network."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import wbtool


def test_online_run_is_pushed_after_finish(tmp_path: Path, store_dir: Path, cli) -> None:
    remote = tmp_path / "remote"
    assert cli("remote", "add", "team", str(remote), "--default").code == 0
    Path("w.txt").write_text("weights")
    with wbtool.init(project="p", mode="online",
                     settings={"quiet": True, "console": "off"}) as run:
        run.log({"loss": 0.5})
        art = wbtool.Artifact("model", "model")
        art.add_file("w.txt")
        run.log_artifact(art)
    record = remote / "projects" / "p" / "runs" / run.id / "run.json"
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert record.exists(), (store_dir / "logs" / f"sync-{run.id}.log").read_text()
    assert (remote / "projects" / "p" / "artifacts" / "model" / "versions" / "v0.json").exists()


def test_online_without_a_default_remote_warns(capsys: pytest.CaptureFixture[str]) -> None:
    with wbtool.init(project="p", mode="online", settings={"console": "off"}) as run:
        run.log({"loss": 0.5})
    assert "no default remote" in capsys.readouterr().err
