"""The README's commands and the examples they run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def code_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)]


def test_readme_commands() -> None:
    first, second = code_blocks()[:2]
    assert "examples/train.py" in first and "wbtool run" in first
    assert second in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_train_example_under_wbtool_run(store_dir: Path) -> None:
    pytest.importorskip("numpy")
    proc = subprocess.run(
        [sys.executable, "-m", "wbtool", "run", "--", sys.executable,
         str(ROOT / "examples" / "train.py"), "--epochs", "3", "--samples", "900"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "best val/acc" in proc.stdout and "wbtool: history" in proc.stderr
    (folder,) = (store_dir / "runs").iterdir()
    doc = json.loads((folder / "run.json").read_text())
    assert doc["state"] == "finished" and doc["project"] == "quickstart"
    rows = (folder / "history.jsonl").read_text().splitlines()
    assert len(rows) == 3
    assert "best val/acc" in (folder / "output.log").read_text()
    import wbtool

    model = wbtool.Api().artifact("quickstart/spirals-mlp:candidate")
    assert [e.path for e in model.manifest] == ["model.npz"]
    assert model.logged_by().id == folder.name


@pytest.mark.slow
def test_quickstart_script(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)  # this Python's wbtool comes first
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "done:" in proc.stdout
