"""What framework integrations call on ``import wbtool as wandb``.

PyTorch Lightning's ``WandbLogger`` and Hugging Face's ``WandbCallback`` drive
the SDK for their users. The scripts below replay their call sequences (the
same calls, arguments and order, without importing either library) in real
child processes; the run folder and the artifacts are then read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import wbtool as wandb
from wbtool.errors import ConflictError, NotFoundError, SettingsError, UsageError
from wbtool.runs.history import iter_rows


@pytest.fixture(autouse=True)
def _finish_runs():
    yield
    from wbtool.runs import current

    for run in current.active():
        run.finish()
    current.set_defaults({})


def script(code: str, *args: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=120, stdin=subprocess.DEVNULL,
    )


def folder(store: Path, run_id: str) -> Path:
    return store / "runs" / run_id


def rows(store: Path, run_id: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("_runtime", "_timestamp")}
            for r in iter_rows(folder(store, run_id) / "history.jsonl")]


def summary(store: Path, run_id: str) -> dict[str, Any]:
    return json.loads((folder(store, run_id) / "summary.json").read_text())


def config(store: Path, run_id: str) -> dict[str, Any]:
    return yaml.safe_load((folder(store, run_id) / "config.yaml").read_text())


def record(store: Path, run_id: str) -> dict[str, Any]:
    return json.loads((folder(store, run_id) / "run.json").read_text())


# -- Lightning's WandbLogger ----------------------------------------------------------

LIGHTNING_TRAIN = """
import os, wbtool as wandb

wandb.require("service")  # WandbLogger.__getstate__, under the spawn start method
assert wandb.run is None
# WandbLogger(project=..., group=..., tags=...): what it hands to init
init_args = {"name": None, "project": "lightning_logs", "dir": ".", "id": None,
             "resume": "allow", "anonymous": None}
init_args.update(group="ablation", tags=["baseline"])
experiment = wandb.init(**init_args)
experiment.define_metric("trainer/global_step")
experiment.define_metric("*", step_metric="trainer/global_step", step_sync=True)

# log_hyperparams, twice (a LightningModule's hparams, then the datamodule's)
experiment.config.update({"lr": 0.01, "layers": [32, 16], "optimizer": {"name": "adam"}},
                         allow_val_change=True)
experiment.config.update({"lr": 0.02, "batch_size": 64}, allow_val_change=True)

# log_metrics(metrics, step): the step goes in as trainer/global_step
for step in (0, 10, 20):
    experiment.log(dict({"train/loss": 1.0 / (step + 1), "epoch": 0},
                        **{"trainer/global_step": step}))
experiment.log(dict({"val/acc": 0.75, "epoch": 0}, **{"trainer/global_step": 20}))
wandb.log({"custom/by_hand": 1.5})  # the user's own call: step_sync adds the step

def checkpoint(path, content, best, score):
    with open(path, "wb") as f:
        f.write(content)
    metadata = {"score": score, "original_filename": path,
                "ModelCheckpoint": {"monitor": "val/acc", "mode": "max", "save_last": None,
                                    "save_top_k": 1, "save_weights_only": False,
                                    "_every_n_train_steps": 0}}
    artifact = wandb.Artifact(name=f"model-{experiment.id}", type="model", metadata=metadata)
    artifact.add_file(path, name="model.ckpt", policy="mutable")
    aliases = ["latest", "best"] if best else ["latest"]
    experiment.log_artifact(artifact, aliases=aliases)

checkpoint("epoch=0-step=20.ckpt", b"weights of epoch 0", True, 0.75)
checkpoint("epoch=1-step=40.ckpt", b"weights of epoch 1", False, 0.5)
print(experiment.id, experiment.name, experiment.project)
assert experiment.url.startswith("file://") and os.path.isdir(experiment.dir)
experiment.finish()
assert wandb.run is None
"""

LIGHTNING_RESUME = """
import os, sys, wbtool as wandb

run_id, out = sys.argv[1], sys.argv[2]
# WandbLogger.download_artifact with no run: through the Api
path = wandb.Api().artifact(f"lightning_logs/model-{run_id}:best", type="model").download(
    root=os.path.join(out, "by-api"))
assert open(os.path.join(path, "model.ckpt"), "rb").read() == b"weights of epoch 0"
# WandbLogger(version=run_id): the same run, resumed; then a run exists already
experiment = wandb.init(name=None, project="lightning_logs", dir=".", id=run_id,
                        resume="allow", anonymous=None)
assert experiment.resumed and wandb.run is experiment
path = wandb.run.use_artifact(f"model-{run_id}:latest").download(root=os.path.join(out, "run"))
assert open(os.path.join(path, "model.ckpt"), "rb").read() == b"weights of epoch 1"
experiment.use_artifact(f"model-{run_id}:best", type="model")
experiment.log(dict({"train/loss": 0.1}, **{"trainer/global_step": 30}))
wandb.finish()
"""


def test_a_lightning_like_logger_records_metrics_config_and_checkpoints(
        store_dir: Path, tmp_path: Path) -> None:
    done = script(LIGHTNING_TRAIN)
    assert done.returncode == 0, done.stderr
    run_id, name, project = done.stdout.split()
    assert project == "lightning_logs"
    assert (record(store_dir, run_id)["state"], record(store_dir, run_id)["name"]) == \
        ("finished", name)
    assert rows(store_dir, run_id) == [
        {"train/loss": 1.0, "epoch": 0, "trainer/global_step": 0, "_step": 0},
        {"train/loss": 1 / 11, "epoch": 0, "trainer/global_step": 10, "_step": 1},
        {"train/loss": 1 / 21, "epoch": 0, "trainer/global_step": 20, "_step": 2},
        {"val/acc": 0.75, "epoch": 0, "trainer/global_step": 20, "_step": 3},
        {"custom/by_hand": 1.5, "trainer/global_step": 20, "_step": 4},
    ]
    assert config(store_dir, run_id) == {"lr": 0.02, "batch_size": 64, "layers": [32, 16],
                                         "optimizer": {"name": "adam"}}
    last = summary(store_dir, run_id)
    assert last["val/acc"] == 0.75 and last["trainer/global_step"] == 20
    best = wandb.Api().artifact(f"lightning_logs/model-{run_id}:best")
    latest = wandb.Api().artifact(f"lightning_logs/model-{run_id}:latest")
    assert (best.version, sorted(best.aliases)) == ("v0", ["best"])
    assert (latest.version, sorted(latest.aliases)) == ("v1", ["latest"])
    assert best.type == "model" and best.metadata["score"] == 0.75
    assert best.metadata["ModelCheckpoint"]["save_top_k"] == 1
    assert [e for e in best.manifest.entries] == ["model.ckpt"]

    again = script(LIGHTNING_RESUME, run_id, str(tmp_path / "dl"))
    assert again.returncode == 0, again.stderr
    assert record(store_dir, run_id)["state"] == "finished"
    assert rows(store_dir, run_id)[-1] == {"train/loss": 0.1, "trainer/global_step": 30,
                                           "_step": 5}


LIGHTNING_SPAWN = """
import multiprocessing, os, sys, wbtool as wandb

class WandbLogger:  # what Trainer(strategy="ddp_spawn") pickles into its workers
    def __init__(self, **kwargs):
        self._wandb_init = dict(name=None, project="lightning_logs", id=None,
                                resume="allow", anonymous=None, **kwargs)
        self._experiment = None

    def __getstate__(self):
        wandb.require("service")
        _ = self.experiment
        state = self.__dict__.copy()
        state["_id"] = getattr(self._experiment, "id", None)
        state["_attach_id"] = getattr(self._experiment, "_attach_id", None)
        state["_name"] = self._experiment.name
        state["_experiment"] = None  # cannot be pickled
        return state

    @property
    def experiment(self):
        if self._experiment is None:
            attach_id = getattr(self, "_attach_id", None)
            if wandb.run is not None:
                self._experiment = wandb.run
            elif attach_id is not None and hasattr(wandb, "_attach"):
                self._experiment = wandb._attach(attach_id)
            else:
                self._experiment = wandb.init(**self._wandb_init)
                self._experiment.define_metric("trainer/global_step")
                self._experiment.define_metric("*", step_metric="trainer/global_step",
                                               step_sync=True)
        return self._experiment

def fit(logger, rank):  # the rank-0 worker: logs, sets a hyper-parameter, never finishes
    assert wandb.run is None
    for step in (10, 20):
        logger.experiment.log({"train/loss": 1.0 / step, "trainer/global_step": step})
    logger.experiment.config.update({"from_worker": rank})
    logger.experiment.summary["best_from_worker"] = 0.5
    print("worker", logger._id, logger.experiment.id, flush=True)

def by_keywords(attach_id, run_id):  # wandb._attach(attach_id=..., run_id=...)
    wandb._attach(attach_id=attach_id, run_id=run_id).log({"by_keywords": 1})

def with_the_run(run):  # a run pickled as such: it joins, as the reference's does
    run.log({"pickled_run": 1})
    assert wandb.run is run

def by_settings(run_id, root):  # wandb.init with the shared-mode settings
    run = wandb.init(id=run_id, dir=root, settings=wandb.Settings(
        mode="shared", x_primary=False, x_label="rank1"))
    run.log({"by_settings": 1})
    run.finish()

if __name__ == "__main__":
    logger = WandbLogger(dir=sys.argv[1], config={"lr": 0.01})
    logger.experiment.log({"train/loss": 1.0, "trainer/global_step": 0})
    spawn = multiprocessing.get_context("spawn")
    run = logger.experiment
    for target, args in ((fit, (logger, 0)), (by_keywords, (run._attach_id, run.id)),
                         (with_the_run, (run,)), (by_settings, (run.id, sys.argv[1]))):
        child = spawn.Process(target=target, args=args)
        child.start()
        child.join()
        assert child.exitcode == 0, target
        assert run.state == "running"
    logger.experiment.log({"train/loss": 0.01, "trainer/global_step": 30})
    logger.experiment.config.update({"from_parent": 1})
    print(run.id)
    wandb.finish()
"""


def test_a_lightning_like_logger_attaches_its_spawned_workers_to_its_run(
        store_dir: Path, tmp_path: Path) -> None:
    """Under the spawn start method (Lightning's ddp_spawn) a worker gets the
    logger pickled with the run's ``_attach_id`` and joins the run with
    ``wandb._attach``: its rows, config and summary land in the parent's run,
    as a secondary process of a shared run. The run lives in a store that
    the worker finds only through the handle (``dir=``, no WBTOOL_DIR)."""
    program = tmp_path / "train.py"
    program.write_text(textwrap.dedent(LIGHTNING_SPAWN))
    root = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k != "WBTOOL_DIR"}
    done = subprocess.run([sys.executable, str(program), str(root)], capture_output=True,
                          text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    worker, logged_as, attached, run_id = done.stdout.split()
    assert (worker, logged_as, attached) == ("worker", run_id, run_id)
    store = root / ".wbtool"
    assert not (store_dir / "runs").exists()
    doc = record(store, run_id)
    assert (doc["state"], doc["project"]) == ("finished", "lightning_logs")
    history = rows(store, run_id)
    parent = [r for r in history if "_label" not in r]
    assert [r["trainer/global_step"] for r in parent] == [0, 30]
    from_worker = [r for r in history if "train/loss" in r and "_label" in r]
    assert [(r["trainer/global_step"], r["train/loss"]) for r in from_worker] == \
        [(10, 0.1), (20, 0.05)]
    assert len({r["_label"] for r in from_worker}) == 1
    labelled = {k: r.get("_label") for r in history
                for k in ("by_keywords", "pickled_run", "by_settings") if k in r}
    assert set(labelled) == {"by_keywords", "pickled_run", "by_settings"}
    assert labelled["by_settings"] == "rank1" and None not in labelled.values()
    # steps count on from the parent's rows (flushed when it gave out the handle)
    assert from_worker[0]["_step"] == 1
    assert config(store, run_id) == {"lr": 0.01, "from_worker": 0, "from_parent": 1}
    last = summary(store, run_id)
    assert last["best_from_worker"] == 0.5 and last["trainer/global_step"] == 30
    states = [json.loads(line) for line in
              (folder(store, run_id) / "events.jsonl").read_text().splitlines()]
    assert [e["state"] for e in states if e.get("type") == "state"] == ["running", "finished"]


def test_attach_refuses_what_names_no_run(store_dir: Path) -> None:
    with pytest.raises(UsageError, match="needs the attach_id"):
        wandb._attach()
    run = wandb.init(project="p", settings={"quiet": True, "console": "off"})
    assert wandb._attach(run._attach_id) is run  # its own process: the run itself
    with pytest.raises(UsageError, match=f"attach_id names run {run.id}, not other"):
        wandb._attach(run._attach_id, run_id="other")
    run.finish()
    assert run._attach_id is None
    with pytest.raises(TypeError, match="cannot be handed to another process: it is finished"):
        import pickle

        pickle.dumps(run)


def test_attach_to_a_run_that_has_ended_is_refused_at_once(store_dir: Path) -> None:
    """A handle (a pickled run) used after its run ended waited two minutes
    for a primary process that would never start it again."""
    import time

    run = wandb.init(project="p", settings={"quiet": True, "console": "off"})
    handle = run._attach_id
    assert handle is not None
    run.finish()
    started = time.monotonic()
    with pytest.raises(ConflictError, match=f"run {run.id} has ended \\(finished\\)"):
        wandb._attach(handle)
    with pytest.raises(NotFoundError, match="run to attach to"):
        wandb._attach(str(Path(handle).with_name("gone0001")))
    assert time.monotonic() - started < 30


# -- Hugging Face's WandbCallback -----------------------------------------------------

HF_TRAIN = """
import numbers, os, tempfile, wbtool as wandb
from pathlib import Path

args = {"output_dir": "out", "run_name": "out", "learning_rate": 5e-05,
        "num_train_epochs": 1, "logging_steps": 1, "report_to": ["wandb"]}
model_config = {"hidden_size": 8, "architectures": ["TinyModel"]}

def rewrite_logs(d):
    new_d = {}
    for k, v in d.items():
        if k.startswith("eval_"):
            new_d["eval/" + k[len("eval_"):]] = v
        elif k.startswith("test_"):
            new_d["test/" + k[len("test_"):]] = v
        else:
            new_d["train/" + k] = v
    return new_d

def model_name():
    if args["run_name"] is None or args["run_name"] == args["output_dir"]:
        return f"model-{wandb.run.id}"
    return f"model-{wandb.run.name}"

def setup():  # WandbCallback.setup
    combined = {**model_config, **args}
    for _ in range(2):  # setup runs again after a hyper-parameter trial: said once
        wandb.termwarn("The `run_name` is currently set to the same value as "
                       "`TrainingArguments.output_dir`.", repeat=False)
    if wandb.run is None:
        wandb.init(project=os.getenv("WANDB_PROJECT", "huggingface"), name=args["run_name"])
    wandb.config.update(combined or {}, allow_val_change=True)
    if getattr(wandb, "define_metric", None):
        wandb.define_metric("train/global_step")
        wandb.define_metric("*", step_metric="train/global_step", step_sync=True)
    wandb.run._label(code="transformers_trainer")
    wandb.config["model/num_parameters"] = 1234
    with tempfile.TemporaryDirectory() as temp_dir:
        artifact = wandb.Artifact(name=model_name(), type="model", metadata={
            "model_config": model_config,
            "num_parameters": wandb.config.get("model/num_parameters"),
            "initial_model": True})
        Path(temp_dir, "model_architecture.txt").write_text("TinyModel(Linear(8, 2))")
        for f in Path(temp_dir).glob("*"):
            if f.is_file():
                with artifact.new_file(f.name, mode="wb") as fa:
                    fa.write(f.read_bytes())
        wandb.run.log_artifact(artifact, aliases=["base_model"])
    assert wandb.run.url.startswith("file://")

SINGLE = ["train_runtime", "train_samples_per_second", "train_steps_per_second",
          "train_loss", "total_flos"]

def on_log(logs, global_step):
    for k, v in logs.items():
        if k in SINGLE:
            wandb.run.summary[k] = v
    rest = rewrite_logs({k: v for k, v in logs.items() if k not in SINGLE})
    wandb.log({**rest, "train/global_step": global_step})

def numbers_of_summary():
    return {k: v for k, v in dict(wandb.summary).items()
            if isinstance(v, numbers.Number) and not k.startswith("_")}

setup()
on_log({"loss": 0.9, "learning_rate": 5e-05, "epoch": 0.5}, 1)
on_log({"loss": 0.7, "learning_rate": 2.5e-05, "epoch": 1.0}, 2)
on_log({"eval_loss": 0.8, "eval_runtime": 0.25, "epoch": 1.0}, 2)
# on_save with WANDB_LOG_MODEL=checkpoint
ckpt = Path(args["output_dir"], "checkpoint-2")
ckpt.mkdir(parents=True)
(ckpt / "model.safetensors").write_bytes(b"tensors")
(ckpt / "trainer_state.json").write_text("{}")
metadata = numbers_of_summary()
metadata["model/num_parameters"] = wandb.config.get("model/num_parameters")
artifact = wandb.Artifact(name=model_name(), type="model", metadata=metadata)
artifact.add_dir(str(ckpt))
wandb.log_artifact(artifact, aliases=[f"epoch_{round(1.0, 2)}", "checkpoint_global_step_2"])
on_log({"train_runtime": 3.5, "train_samples_per_second": 9.1, "train_steps_per_second": 0.6,
        "total_flos": 1e12, "train_loss": 0.8, "epoch": 1.0}, 2)
# on_train_end with WANDB_LOG_MODEL=end
metadata = numbers_of_summary()
metadata["final_model"] = True
artifact = wandb.Artifact(name=model_name(), type="model", metadata=metadata)
with artifact.new_file("model.safetensors", mode="wb") as fa:
    fa.write(b"final tensors")
wandb.run.log_artifact(artifact, aliases=["final_model"])
print(wandb.run.id)
# no finish: the callback leaves the run to the interpreter's exit
"""


def test_a_hugging_face_like_callback_records_its_run_and_models(
        store_dir: Path, tmp_path: Path) -> None:
    done = script(HF_TRAIN)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    warnings = [line for line in done.stderr.splitlines() if "run_name" in line]
    assert warnings == ["wbtool: WARNING The `run_name` is currently set to the same value "
                        "as `TrainingArguments.output_dir`."]
    doc = record(store_dir, run_id)
    assert (doc["state"], doc["exit_code"], doc["project"], doc["name"]) == \
        ("finished", 0, "huggingface", "out")
    assert rows(store_dir, run_id) == [
        {"train/loss": 0.9, "train/learning_rate": 5e-05, "train/epoch": 0.5,
         "train/global_step": 1, "_step": 0},
        {"train/loss": 0.7, "train/learning_rate": 2.5e-05, "train/epoch": 1.0,
         "train/global_step": 2, "_step": 1},
        {"eval/loss": 0.8, "eval/runtime": 0.25, "train/epoch": 1.0,
         "train/global_step": 2, "_step": 2},
        {"train/epoch": 1.0, "train/global_step": 2, "_step": 3},
    ]
    last = summary(store_dir, run_id)
    assert last["train_runtime"] == 3.5 and last["train_loss"] == 0.8
    assert last["eval/loss"] == 0.8 and last["train/loss"] == 0.7
    cfg = config(store_dir, run_id)
    assert cfg["learning_rate"] == 5e-05 and cfg["hidden_size"] == 8
    assert cfg["model/num_parameters"] == 1234 and cfg["report_to"] == ["wandb"]

    api = wandb.Api()
    base = api.artifact(f"huggingface/model-{run_id}:base_model", type="model")
    assert base.version == "v0" and base.metadata["initial_model"] is True
    assert base.metadata["num_parameters"] == 1234
    assert Path(base.download(root=str(tmp_path / "base")), "model_architecture.txt") \
        .read_text() == "TinyModel(Linear(8, 2))"
    saved = api.artifact(f"huggingface/model-{run_id}:checkpoint_global_step_2")
    assert saved.version == "v1" and "epoch_1.0" in saved.aliases
    assert sorted(saved.manifest.entries) == ["model.safetensors", "trainer_state.json"]
    assert saved.metadata["train/loss"] == 0.7 and saved.metadata["model/num_parameters"] == 1234
    final = api.artifact(f"huggingface/model-{run_id}:final_model")
    assert final.version == "v2" and sorted(final.aliases) == ["final_model", "latest"]
    assert final.metadata["final_model"] is True and final.metadata["train_runtime"] == 3.5
    assert not any(k.startswith("_") for k in final.metadata)


# -- wandb.integration.keras: WandbMetricsLogger and WandbModelCheckpoint --------------

KERAS_TRAIN = """
import os, wbtool as wandb

class WandbMetricsLogger:  # log_freq=2: every other batch, and every epoch
    def __init__(self, log_freq):
        if wandb.run is None:
            raise wandb.Error("You must call `wandb.init()` before WandbMetricsLogger()")
        self.log_freq, self.global_batch = log_freq, 0
        wandb.define_metric("batch/batch_step")
        wandb.define_metric("batch/*", step_metric="batch/batch_step")
        wandb.define_metric("epoch/epoch")
        wandb.define_metric("epoch/*", step_metric="epoch/epoch")

    def on_batch_end(self, batch, logs):
        if batch % self.log_freq == 0:
            logs = {f"batch/{k}": v for k, v in logs.items()}
            logs["batch/batch_step"] = self.global_batch
            logs["batch/learning_rate"] = 0.01
            wandb.log(logs)
            self.global_batch += self.log_freq

    def on_epoch_end(self, epoch, logs):
        logs = {f"epoch/{k}": v for k, v in logs.items()}
        logs["epoch/epoch"] = epoch
        wandb.log(logs)

try:
    WandbMetricsLogger(2)
except wandb.Error as e:
    print("refused:", e)
run = wandb.init(project="keras", config={"epochs": 2})
logger = WandbMetricsLogger(2)
for epoch in range(2):
    for batch in range(4):
        logger.on_batch_end(batch, {"loss": 1.0 - epoch / 2 - batch / 10})
    logger.on_epoch_end(epoch, {"loss": 0.9 - epoch / 2, "val_loss": 1.0 - epoch / 2})
    wandb.log({"custom": epoch})  # a metric of no group: no step metric to add
    # WandbModelCheckpoint(filepath="model.keras", save_best_only=False)
    with open("model.keras", "w") as f:
        f.write(f"weights {epoch}")
    artifact = wandb.Artifact(f"run_{wandb.run.id}_model", type="model")
    artifact.add_file("model.keras")
    wandb.log_artifact(artifact, aliases=["latest", f"epoch_{epoch}"])
print(run.id)
wandb.finish()
"""


def test_a_keras_like_metrics_logger_keeps_each_group_on_its_own_step(store_dir: Path) -> None:
    done = script(KERAS_TRAIN)
    assert done.returncode == 0, done.stderr
    refused, run_id = done.stdout.splitlines()
    assert refused == "refused: You must call `wandb.init()` before WandbMetricsLogger()"
    got = rows(store_dir, run_id)
    batch_rows = [r for r in got if "batch/loss" in r]
    assert [(r["batch/batch_step"], round(r["batch/loss"], 6)) for r in batch_rows] == \
        [(0, 1.0), (2, 0.8), (4, 0.5), (6, 0.3)]
    epoch_rows = [r for r in got if "epoch/loss" in r]
    assert [(r["epoch/epoch"], r["epoch/val_loss"]) for r in epoch_rows] == [(0, 1.0), (1, 0.5)]
    # step_sync keeps each group on its own axis: neither step leaks into the other
    assert not any("epoch/epoch" in r for r in batch_rows)
    assert not any("batch/batch_step" in r for r in epoch_rows)
    assert [r for r in got if "custom" in r] == [{"custom": 0, "_step": 3},
                                                 {"custom": 1, "_step": 7}]
    last = summary(store_dir, run_id)
    assert (last["batch/batch_step"], last["epoch/epoch"]) == (6, 1)
    api = wandb.Api()
    first = api.artifact(f"keras/run_{run_id}_model:epoch_0")
    latest = api.artifact(f"keras/run_{run_id}_model:latest")
    assert (first.version, first.aliases) == ("v0", ["epoch_0"])
    assert (latest.version, sorted(latest.aliases)) == ("v1", ["epoch_1", "latest"])
    assert [e for e in latest.manifest.entries] == ["model.keras"]

# -- the module-level calls they make ---------------------------------------------------

def test_login_returns_true_and_never_asks_or_keeps_the_key(store_dir: Path,
                                                             tmp_path: Path) -> None:
    key = "0123456789abcdef" * 2 + "deadbeef"
    done = script(f"""
        import wbtool as wandb
        assert wandb.login() is True
        assert wandb.login(key={key!r}, relogin=True, host="https://example.invalid",
                           verify=True, timeout=1) is True
        assert wandb.login(anonymous="must") is True
        try:
            wandb.login(anonymous="sometimes")
        except wandb.WbtoolError as e:
            print(e)
        run = wandb.init(project="p")
        run.finish()
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == \
        "wbtool.login: anonymous must be 'allow', 'must' or 'never', not 'sometimes'"
    for base in (store_dir, tmp_path / "home"):
        for path in base.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path


def test_require_accepts_the_reference_requirements_and_refuses_others() -> None:
    wandb.require("service")
    wandb.require(["core", "legacy-service"])
    wandb.require()
    with pytest.raises(UsageError, match="unsupported requirement 'nope'"):
        wandb.require("nope")
    with pytest.raises(UsageError, match="unsupported requirement 'nope'"):
        wandb.require(["service", "nope"])
    with pytest.raises(UsageError, match="a name or a list of names, not int"):
        wandb.require(5)  # type: ignore[arg-type]


def test_setup_settings_are_the_defaults_of_later_runs(store_dir: Path) -> None:
    wandb.setup(settings=wandb.Settings(project="from-setup", run_group="g", quiet=True))
    with wandb.init() as run:
        assert (run.project, run.group) == ("from-setup", "g")
    with wandb.init(project="mine") as run:  # init's own arguments win
        assert (run.project, run.group) == ("mine", "g")
    wandb.setup({"run_job_type": "eval"})  # replaces what the last call set
    with wandb.init(settings={"quiet": True}) as run:
        assert (run.project, run.group, run.job_type) == ("uncategorized", None, "eval")
    with pytest.raises(SettingsError, match="no_such_setting"):
        wandb.setup({"no_such_setting": 1})
    with pytest.raises(UsageError, match=r"must be a wbtool\.Settings or a dict"):
        wandb.setup(settings=["project"])


SETUP_SPAWN = """
import multiprocessing, sys, wbtool as wandb

def child(queue):
    run = wandb.init()
    queue.put((run.project, run.group, list(run.tags), run.settings.quiet))
    run.finish()

def started(method):
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    got = queue.get(timeout=60)
    process.join()
    assert process.exitcode == 0
    return got

if __name__ == "__main__":
    wandb.setup(settings=wandb.Settings(project="from-setup", run_group="g",
                                        run_tags=["a", "b"], quiet=True))
    for method in ("spawn", "forkserver", "fork"):
        print(method, *started(method))
    wandb.setup({"silent": True})  # replaces what the last call set, for children too
    print("again", *started("spawn"))
"""


def test_setup_settings_are_the_defaults_of_spawned_children(
        store_dir: Path, tmp_path: Path) -> None:
    """A worker started with the spawn or forkserver method is a new
    interpreter: it gets wbtool.setup's settings through the environment,
    as a forked one inherits them, above WBTOOL_* variables as in its parent."""
    program = tmp_path / "setup_spawn.py"
    program.write_text(textwrap.dedent(SETUP_SPAWN))
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                          env={**os.environ, "WBTOOL_PROJECT": "from-env"}, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "spawn from-setup g ['a', 'b'] True",
        "forkserver from-setup g ['a', 'b'] True",
        "fork from-setup g ['a', 'b'] True",
        "again from-env None [] False",
    ]


def test_setup_settings_from_the_environment_must_be_a_json_object(
        store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wbtool.runs import current

    monkeypatch.setattr(current._REG, "defaults", None)  # no setup() in this process
    monkeypatch.setenv(current.SETUP_ENV, '{"project": "inherited"}')
    with wandb.init(settings={"quiet": True}) as run:
        assert run.project == "inherited"
    monkeypatch.setenv(current.SETUP_ENV, "[1]")
    with pytest.raises(SettingsError, match=r"WBTOOL_SETUP_SETTINGS.*JSON object"):
        wandb.init(settings={"quiet": True})
    wandb.setup({"run_group": "mine"})  # this process's own replaces its parent's
    with wandb.init(settings={"quiet": True}) as run:
        assert (run.project, run.group) == ("uncategorized", "mine")


def test_teardown_finishes_every_active_run(store_dir: Path) -> None:
    first = wandb.init(project="p", settings={"quiet": True})
    second = wandb.init(project="p", reinit="create_new", settings={"quiet": True})
    wandb.teardown(exit_code=3)
    assert wandb.run is None
    for run in (first, second):
        assert record(store_dir, run.id)["state"] == "failed"
        assert record(store_dir, run.id)["exit_code"] == 3


def test_term_messages_go_to_stderr_with_the_wbtool_prefix(
        capsys: pytest.CaptureFixture[str]) -> None:
    wandb.termlog("plain news")
    wandb.termwarn("two\nlines")
    wandb.termerror("broken", prefix=False)
    wandb.termlog("no end", newline=False)
    for _ in range(3):
        wandb.termwarn("said once", repeat=False)
    wandb.termlog("said once", repeat=False)  # not the same message as the warning
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("wbtool: plain news\n"
                   "wbtool: WARNING two\nwbtool: WARNING lines\n"
                   "ERROR broken\n"
                   "wbtool: no end"
                   "wbtool: WARNING said once\n"
                   "wbtool: said once\n")


@pytest.mark.parametrize(("settings", "shown"), [
    ({}, ["wbtool: info", "wbtool: WARNING warn", "wbtool: ERROR error"]),
    ({"silent": True}, []),
    ({"quiet": True}, ["wbtool: WARNING warn", "wbtool: ERROR error"]),
    ({"show_info": False}, ["wbtool: WARNING warn", "wbtool: ERROR error"]),
    ({"show_warnings": False}, ["wbtool: info", "wbtool: ERROR error"]),
    ({"show_errors": False}, ["wbtool: info", "wbtool: WARNING warn"]),
])
def test_term_messages_follow_the_run_settings(settings: dict[str, Any], shown: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = wandb.init(project="p", settings={"console": "off", **settings})
    capsys.readouterr()
    wandb.termlog("info")
    wandb.termwarn("warn")
    wandb.termerror("error")
    assert capsys.readouterr().err.splitlines() == shown
    run.finish(quiet=True)


def test_term_messages_without_a_run_follow_the_environment(store_dir: Path) -> None:
    code = "import wbtool as wandb; wandb.termlog('a'); wandb.termwarn('b'); wandb.termerror('c')"
    assert script(code).stderr.splitlines() == ["wbtool: a", "wbtool: WARNING b",
                                                "wbtool: ERROR c"]
    assert script(code, env={"WBTOOL_SILENT": "true"}).stderr == ""
    assert script(code, env={"WBTOOL_SHOW_WARNINGS": "false"}).stderr.splitlines() == \
        ["wbtool: a", "wbtool: ERROR c"]



@pytest.mark.parametrize("arg", ["sync_tensorboard", "tensorboard", "monitor_gym"])
def test_init_says_when_it_is_asked_to_patch_a_library_it_does_not(
        arg: str, capsys: pytest.CaptureFixture[str]) -> None:
    """WandbLogger(sync_tensorboard=True) hands it to init; nothing is mirrored."""
    run = wandb.init(project="p", settings={"quiet": True}, **{arg: True})
    assert capsys.readouterr().err.splitlines() == [
        f"wbtool: WARNING init({arg}=True) is not supported: "
        + ("gym environment videos are not logged" if arg == "monitor_gym" else
           "TensorBoard event files are not copied into the run")
        + "; log the values with run.log"]
    run.finish()
    wandb.init(project="p", settings={"quiet": True, "silent": True}, **{arg: True}).finish()
    wandb.init(project="p", settings={"quiet": True}, **{arg: False}).finish()
    assert capsys.readouterr().err == ""


def test_a_copied_run_is_the_run_itself(store_dir: Path) -> None:
    """Deep-copying an object that holds a run (a logger, a config tree) made
    the run the primary of a shared run, and failed once the run had ended."""
    import copy

    run = wandb.init(project="p", settings=wandb.Settings(silent=True))
    holder = {"logger": {"run": run}, "lr": 0.1}
    copied = copy.deepcopy(holder)
    assert copied["logger"]["run"] is run and copy.copy(run) is run
    assert run._shared is None  # still a run of its own, not a shared one
    run.finish()
    assert copy.deepcopy(holder)["logger"]["run"] is run
