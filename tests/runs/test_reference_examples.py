"""The reference's examples that need no server, run as written with
``import wbtool as wandb`` (only the user's own functions are stubbed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import wbtool as wandb


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WBTOOL_QUIET", "true")
    monkeypatch.setenv("WBTOOL_CONSOLE", "off")


def train_one_epoch() -> dict[str, float]:
    return {"loss": 0.5, "accuracy": 0.75}


def test_track_an_experiment() -> None:
    max_accuracy = 0.9
    with wandb.init(project="my-experiments", config={"learning_rate": 0.001}) as run:
        config = run.config
        for epoch in range(10):
            metrics = train_one_epoch()
            run.log({"loss": metrics["loss"], "accuracy": metrics["accuracy"],
                     "epoch": epoch})
        run.summary["best_accuracy"] = max_accuracy
    assert config["learning_rate"] == 0.001
    api_run = wandb.Api().run(f"my-experiments/{run.id}")
    assert api_run.summary["best_accuracy"] == 0.9
    assert len(list(api_run.scan_history())) == 10
    assert api_run.state == "finished"


def test_version_a_model_artifact() -> None:
    Path("model.pt").write_bytes(b"weights")
    Path("model_configs").mkdir()
    Path("model_configs/a.yaml").write_text("depth: 50\n")
    with wandb.init(project="my-models") as run:
        model_artifact = wandb.Artifact(
            name="my-model", type="model",
            description="ResNet-50 trained on ImageNet subset",
            metadata={"architecture": "ResNet-50", "dataset": "ImageNet-1K",
                      "accuracy": 0.95},
        )
        model_artifact.add_file("model.pt")
        model_artifact.add_dir("model_configs/")
        run.log_artifact(model_artifact)
    art = wandb.Api().artifact("my-models/my-model:latest")
    assert sorted(e.path for e in art.manifest) == ["a.yaml", "model.pt"]
    assert art.logged_by().id == run.id


def test_configure_sdk_settings() -> None:
    settings = wandb.Settings(project="production-runs", entity="my-team", mode="offline",
                              save_code=True, quiet=True)
    with wandb.init(settings=settings) as run:
        assert run.project == "production-runs" and run.entity == "my-team"
    os.environ["WBTOOL_PROJECT"] = "production-runs"
    try:
        with wandb.init() as run:
            assert run.project == "production-runs"
    finally:
        del os.environ["WBTOOL_PROJECT"]


def test_track_relationships(tmp_path: Path) -> None:
    data = tmp_path / "ds"
    data.mkdir()
    (data / "rows.csv").write_text("1\n")
    with wandb.init(project="ml-pipeline") as run:
        run.log_artifact(str(data), name="dataset", type="dataset")
    Path("model.pt").write_bytes(b"m")
    with wandb.init(project="ml-pipeline") as run:
        dataset = run.use_artifact("dataset:v0")
        dataset_dir = dataset.download()
        assert (Path(dataset_dir) / "rows.csv").exists()
        model_artifact = wandb.Artifact(name="trained-model", type="model")
        model_artifact.add_file("model.pt")
        run.log_artifact(model_artifact)
    api = wandb.Api()
    model = api.artifact("ml-pipeline/trained-model:latest")
    producer = model.logged_by()
    assert [a.name for a in producer.used_artifacts()] == ["dataset:v0"]


def test_run_class_examples() -> None:
    acc, loss = 0.8, 0.2
    with wandb.init(entity="entity", project="project") as run:
        run.log({"accuracy": acc, "loss": loss})
    with wandb.init() as run:
        run.log({"train-loss": 0.5, "accuracy": 0.9})
    with wandb.init() as run:
        run.log({"loss": 0.2}, commit=False)
        run.log({"accuracy": 0.8})
    rows = list(wandb.Api().run(run.id).scan_history())
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows] == [
        {"loss": 0.2, "accuracy": 0.8}]


def test_histogram_of_numpy_gradients() -> None:
    np = pytest.importorskip("numpy")
    gradients = np.random.randn(100, 100)
    with wandb.init() as run:
        run.log({"gradients": gradients})
    (row,) = wandb.Api().run(run.id).scan_history()
    assert row["gradients"]["_type"] == "histogram"
    assert sum(row["gradients"]["values"]) == 10000


def test_use_artifact_forms() -> None:
    Path("f.txt").write_text("x")
    with wandb.init(project="example", entity="me") as run:
        art = wandb.Artifact("thing", "dataset")
        art.add_file("f.txt")
        run.log_artifact(art, aliases=["alias1"])
    run = wandb.init(project="example", entity="me")
    artifact_a = run.use_artifact(artifact_or_name="thing:alias1")
    artifact_b = run.use_artifact(artifact_or_name="thing:v0")
    artifact_c = run.use_artifact(artifact_or_name="me/example/thing:alias1")
    artifact_d = run.use_artifact(artifact_or_name="me/example/thing:v0")
    run.finish()
    assert len({a.digest for a in (artifact_a, artifact_b, artifact_c, artifact_d)}) == 1


def test_save_code_keeps_the_program(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path("train_me.py")
    script.write_text("import wbtool\nwbtool.init(save_code=True).finish()\n")
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    (folder,) = (Path(os.environ["WBTOOL_DIR"]) / "runs").iterdir()
    assert (folder / "files/code/train_me.py").read_text() == script.read_text()
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["program"].endswith("train_me.py")


def test_history_as_pandas_and_sampled() -> None:
    pd = pytest.importorskip("pandas")
    with wandb.init(project="p") as run:
        for i in range(1000):
            run.log({"x": i, "y": i * 2} if i % 2 else {"x": i})
    api_run = wandb.Api().run(f"p/{run.id}")
    frame = api_run.history(samples=100)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 100
    assert frame["_step"].iloc[0] == 0 and frame["_step"].iloc[-1] == 999
    rows: list[dict[str, Any]] = api_run.history(keys=["y"], pandas=False, samples=10_000)
    assert len(rows) == 500 and set(rows[0]) == {"y", "_step"}
    assert len(list(api_run.scan_history(min_step=10, max_step=20))) == 10


def test_api_runs_filters_and_order() -> None:
    for lr, tag in ((0.1, "a"), (0.01, "b"), (0.001, "a")):
        with wandb.init(project="sweep", config={"lr": lr}, tags=[tag]) as run:
            run.log({"acc": 1 - lr})
    api = wandb.Api()
    assert len(api.runs("sweep")) == 3
    low = api.runs("sweep", filters={"config.lr": {"$lt": 0.05}})
    assert sorted(r.config["lr"] for r in low) == [0.001, 0.01]
    tagged = api.runs("sweep", filters={"tags": {"$in": ["a"]}, "state": "finished"})
    assert len(tagged) == 2
    best = api.runs("sweep", order="-summary_metrics.acc")
    assert [r.config["lr"] for r in best] == [0.001, 0.01, 0.1]
    with wandb.init(project="sweep", config={"lr": 1.0}):  # no acc: last, either way
        pass
    for order in ("-summary_metrics.acc", "+summary_metrics.acc"):
        assert api.runs("sweep", order=order)[-1].config["lr"] == 1.0
    either = api.runs("sweep", filters={"$or": [{"config.lr": 0.1},
                                                  {"summary_metrics.acc": {"$gt": 0.995}}]})
    assert sorted(r.config["lr"] for r in either) == [0.001, 0.1]
