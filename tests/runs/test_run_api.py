"""The Run API through ``import wbtool as wandb``, against a private store."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import wbtool as wandb
from tests.conftest import Cli
from wbtool.errors import ConflictError, StoreError
from wbtool.runs.history import iter_rows


@pytest.fixture(autouse=True)
def _finish_runs():
    yield
    from wbtool.runs import current

    for run in current.active():
        run.finish()


def quiet(**kw: Any) -> dict[str, Any]:
    return {"quiet": True, "console": "off", **kw}


def history(run: Any) -> list[dict[str, Any]]:
    return list(iter_rows(Path(run._folder.history)))


def strip_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("_runtime", "_timestamp")} for r in rows]


def test_text_that_was_not_utf8_is_kept_and_loses_no_row() -> None:
    """A file name whose bytes are not UTF-8 comes from ``os.listdir`` as a
    string with a lone surrogate; logging one failed the write of the whole
    batch of rows it was in, and the run's finish."""
    name = os.fsdecode(b"img-\xff.png")
    key = os.fsdecode(b"k\xfe")
    with wandb.init(project="p", config={"file": name}, settings=quiet()) as run:
        run.log({"a": 0})
        run.log({"file": name, key: 1})
        for i in range(1, 4):
            run.log({"a": i})
        run.summary["last"] = name
    rows = history(run)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[1]["file"] == name and rows[1][key] == 1
    public = wandb.Api().run(f"p/{run.id}")
    assert public.config["file"] == name and public.summary["last"] == name


def test_three_log_patterns_give_identical_history() -> None:
    results = []
    with wandb.init(project="p", settings=quiet()) as run:
        run.log({"train-loss": 0.5, "accuracy": 0.8})
        run.log({"train-loss": 0.4, "accuracy": 0.9})
    results.append(strip_times(history(run)))
    with wandb.init(project="p", settings=quiet()) as run:
        run.log({"train-loss": 0.5}, commit=False)
        run.log({"accuracy": 0.8})
        run.log({"train-loss": 0.4}, commit=False)
        run.log({"accuracy": 0.9})
    results.append(strip_times(history(run)))
    with wandb.init(project="p", settings=quiet()) as run:
        current_step = 0
        run.log({"train-loss": 0.5}, step=current_step)
        run.log({"accuracy": 0.8}, step=current_step)
        current_step += 1
        run.log({"train-loss": 0.4}, step=current_step)
        run.log({"accuracy": 0.9}, step=current_step)
    results.append(strip_times(history(run)))
    expected = [{"train-loss": 0.5, "accuracy": 0.8, "_step": 0},
                {"train-loss": 0.4, "accuracy": 0.9, "_step": 1}]
    assert results == [expected] * 3


def test_every_row_has_step_runtime_timestamp() -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 1})
    (row,) = history(run)
    assert row["_step"] == 0 and row["_runtime"] >= 0 and row["_timestamp"] > 1e9


def test_lower_step_is_dropped_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    with wandb.init(settings={"console": "off"}) as run:
        run.log({"a": 1}, step=5, commit=True)
        run.log({"a": 2}, step=3)
        run.log({"a": 3})
    assert [(r["_step"], r["a"]) for r in history(run)] == [(5, 1), (6, 3)]
    assert "lower than the current step 6" in capsys.readouterr().err


@pytest.mark.parametrize("step", [1.5, 2.0, "3", math.inf, math.nan, True, "array", None])
def test_a_step_that_is_not_an_integer_is_refused(step: Any) -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 0})
        if step == "array":  # not an integer, though it has __index__
            step = pytest.importorskip("numpy").array([3])
        if step is None:  # a step given as a numpy integer is taken
            np = pytest.importorskip("numpy")
            run.log({"a": 1}, step=np.int64(4))
        else:
            with pytest.raises(ValueError, match="step must be an integer"):
                run.log({"a": 1}, step=step)
            assert run.step == 1
    assert [(r["_step"], r["a"]) for r in history(run)] == (
        [(0, 0), (4, 1)] if step is None else [(0, 0)])


def test_a_step_past_a_64_bit_integer_is_refused() -> None:
    """It was written into the history, which no reader of a step holds."""
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 0}, step=2**63 - 1)
        with pytest.raises(ValueError, match="step must be at most 9223372036854775807"):
            run.log({"a": 1}, step=2**63)
    assert [(r["_step"], r["a"]) for r in history(run)] == [(2**63 - 1, 0)]


@pytest.mark.parametrize("commit", [None, True])
def test_a_step_after_the_highest_one_is_refused(commit: bool | None) -> None:
    """The step after a row at 2**63-1 was 2**63, written into the history
    as it was."""
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 0}, step=2**63 - 1, commit=commit)
        if commit is None:  # joins the row at the highest step and commits it
            run.log({"b": 1})
        for kw in ({}, {"commit": False}, {"commit": True}):
            with pytest.raises(ValueError, match="step must be at most 9223372036854775807: "
                               "the run has a row at that step"):
                run.log({"a": 2}, **kw)
    assert run.state == "finished"
    assert strip_times(history(run)) == [
        {"a": 0, "_step": 2**63 - 1, **({"b": 1} if commit is None else {})}]
    resumed = wandb.init(id=run.id, resume="must", settings=quiet())
    with pytest.raises(ValueError, match="step must be at most 9223372036854775807"):
        resumed.log({"a": 3})
    resumed.finish()
    assert len(history(run)) == 1


def test_explicit_step_jumps_and_commits_the_previous_one() -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 1}, step=2)
        run.log({"b": 2}, step=2)
        run.log({"a": 3}, step=10)
        assert run.step == 10
        run.log({"c": 4})  # implicit: joins step 10 and commits it
        run.log({"d": 5})
    assert strip_times(history(run)) == [
        {"a": 1, "b": 2, "_step": 2}, {"a": 3, "c": 4, "_step": 10}, {"d": 5, "_step": 11}]


def test_nested_values_flatten_and_special_floats_survive() -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"train": {"loss": 1.5, "acc": {"top1": 0.5}}, "nan": math.nan,
                 "inf": math.inf, "ninf": -math.inf, "s": "text", "b": True, "n": None,
                 "lst": [1, 2.5, "x"], "tup": (1, 2)})
    (row,) = history(run)
    assert row["train/loss"] == 1.5 and row["train/acc/top1"] == 0.5
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert row["s"] == "text" and row["b"] is True and row["n"] is None
    assert row["lst"] == [1, 2.5, "x"] and row["tup"] == [1, 2]
    text = Path(run._folder.history).read_text()
    assert "NaN" in text and '"NaN"' not in text


@pytest.mark.parametrize("data", [
    {"train/loss": 1.0, "train": {"loss": 2.0}},
    {"train": {"loss": 2.0}, "train/loss": 1.0},
    {"train": {"loss": 2.0, "x": 1}, "train/loss": [1, 2]},
    {"a": {"b/c": 1}, "a/b": {"c": 2}},
])
def test_a_key_logged_twice_in_one_call_is_refused(data: dict[str, Any]) -> None:
    """``train/loss`` and ``{"train": {"loss": ...}}`` name one key: one of
    the two values was kept and the other lost without a word."""
    with wandb.init(settings=quiet()) as run:
        run.log({"train/loss": 0.5})
        with pytest.raises(ValueError, match=r"cannot log '(train/loss|a/b/c)' twice in one call"):
            run.log(data)
        run.log({"ok": 1})
    assert strip_times(history(run)) == [{"train/loss": 0.5, "_step": 0},
                                         {"ok": 1, "_step": 1}]
    assert run.summary["train/loss"] == 0.5


@pytest.mark.parametrize(("data", "shown"), [
    ({"": 1}, "''"), ({"x": 1, "": 2}, "''"), ({"": [1, 2]}, "''"), ({"": {"b": 1}}, "''"),
    ({"a": {"": 1}}, "'a/'"), ({"a": {"b": {"": "x"}}}, "'a/b/'"),
    ({"a": 1, "b": {"": 2}}, "'b/'"),
])
@pytest.mark.parametrize("step", [None, 0])
def test_an_empty_key_is_refused(data: dict[str, Any], shown: str, step: int | None) -> None:
    """An empty key, or an empty key of a nested dict (``a/``), names no value
    to read back; the config refuses one too. Nothing of the call is kept."""
    with wandb.init(settings=quiet()) as run:
        with pytest.raises(ValueError, match=f"non-empty strings: cannot log {re.escape(shown)}$"):
            run.log(data, step=step)
        run.log({"ok": 1})
    assert strip_times(history(run)) == [{"ok": 1, "_step": 0}]
    assert {k for k in run.summary if not k.startswith("_")} == {"ok"}


def test_numpy_scalars_and_arrays() -> None:
    np = pytest.importorskip("numpy")
    with wandb.init(settings=quiet()) as run:
        run.log({"f": np.float32(0.5), "i": np.int64(3), "small": np.arange(4),
                 "big": np.random.default_rng(0).normal(size=1000), "bool": np.bool_(True)})
    (row,) = history(run)
    assert row["f"] == 0.5 and row["i"] == 3 and row["small"] == [0, 1, 2, 3]
    assert row["bool"] is True
    assert row["big"]["_type"] == "histogram" and sum(row["big"]["values"]) == 1000


def test_unsupported_values_and_keys_are_refused() -> None:
    with wandb.init(settings=quiet()) as run:
        with pytest.raises(ValueError):
            run.log({"x": object()})
        with pytest.raises(ValueError):
            run.log({1: 2})  # type: ignore[dict-item]
        with pytest.raises(ValueError):
            run.log([1, 2])  # type: ignore[arg-type]


def test_a_value_that_contains_itself_is_refused_by_name() -> None:
    """A list or dict that holds itself (a graph node with a back reference)
    recursed until Python gave up with a RecursionError from deep inside."""
    loop: list[Any] = [1]
    loop.append(loop)
    cycle: dict[str, Any] = {"x": 1}
    cycle["self"] = cycle
    with wandb.init(settings=quiet()) as run:
        run.log({"ok": 0})
        for value in (loop, cycle, [cycle], {"inner": loop}):
            with pytest.raises(ValueError, match="'graph"):
                run.log({"graph": value, "a": 1})
            with pytest.raises(ValueError, match="'graph"):
                run.summary["graph"] = value
            with pytest.raises(ValueError, match="'graph"):
                run.config.update({"graph": value})
        run.log({"b": 2})
    assert strip_times(history(run)) == [{"ok": 0, "_step": 0}, {"b": 2, "_step": 1}]
    assert dict(run.config) == {} and "graph" not in run.summary


def test_an_array_too_large_to_keep_leaves_the_last_value_in_place() -> None:
    """The warning says the array was not logged; it was written as null
    all the same, and null replaced the metric's last value in the summary."""
    np = pytest.importorskip("numpy")
    with wandb.init(settings=quiet()) as run:
        run.log({"labels": ["cat"], "loss": 1.0})
        with pytest.warns(UserWarning, match="'labels'.*not logged"):
            run.log({"labels": np.array(["cat"] * 100), "loss": 0.5})
    assert strip_times(history(run)) == [{"labels": ["cat"], "loss": 1.0, "_step": 0},
                                         {"loss": 0.5, "_step": 1}]
    assert run.summary["labels"] == ["cat"]


@pytest.mark.parametrize("kw", [{}, {"commit": False}, {"step": 1}])
def test_a_refused_log_keeps_none_of_its_values(kw: dict[str, Any]) -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"ok": 0})
        with pytest.raises(ValueError, match="bad"):
            run.log({"a": 1, "bad": object(), "c": 3}, **kw)
        with pytest.raises(ValueError, match="keys must be strings"):
            run.log({"a": 1, "nested": {"x": 1, 2: 3}}, **kw)
        run.log({"b": 2})
    assert strip_times(history(run)) == [{"ok": 0, "_step": 0}, {"b": 2, "_step": 1}]
    assert "a" not in run.summary and "nested/x" not in run.summary


def test_keys_that_are_str_subclasses_are_logged_as_plain_strings() -> None:
    import enum

    class Split(str, enum.Enum):
        TRAIN = "train"

    with wandb.init(settings=quiet()) as run:
        run.log({Split.TRAIN: 1, "by_class": {Split.TRAIN: 2}, "lst": [{Split.TRAIN: 3}]})
    (row,) = strip_times(history(run))
    assert row == {"train": 1, "by_class/train": 2, "lst": [{"train": 3}], "_step": 0}
    assert all(type(k) is str for k in run.summary)


def test_common_python_values_are_logged_as_their_plain_json_forms() -> None:
    """Dates, Decimals, sets, Enums, UUIDs, dataclasses and UTF-8 bytes,
    which configs and metrics often hold, were refused as unsupported."""
    import dataclasses
    import datetime
    import decimal
    import enum
    import uuid

    class Opt(enum.Enum):
        ADAM = "adam"

    class Split(str, enum.Enum):
        TRAIN = "train"

    @dataclasses.dataclass(slots=True)
    class Optim:
        lr: float = 0.1
        kind: Opt = Opt.ADAM

    values = {"when": datetime.datetime(2026, 1, 2, 3, 4, 5), "day": datetime.date(2026, 1, 2),
              "took": datetime.timedelta(minutes=2), "rate": decimal.Decimal("0.25"),
              "ids": {3, 1, 2}, "opt": Opt.ADAM, "split": Split.TRAIN,
              "uid": uuid.UUID(int=1), "raw": b"caf\xc3\xa9", "optim": Optim()}
    plain = {"when": "2026-01-02T03:04:05", "day": "2026-01-02", "took": 120.0, "rate": 0.25,
             "ids": [1, 2, 3], "opt": "adam", "split": "train",
             "uid": "00000000-0000-0000-0000-000000000001", "raw": "caf\u00e9"}
    with wandb.init(config=Optim(), settings=quiet()) as run:
        run.config.update(values)
        run.log(values)
        run.summary["best_at"] = datetime.date(2026, 1, 3)
    assert run._folder.read_config() == {"lr": 0.1, "kind": "adam", **plain,
                                         "optim": {"lr": 0.1, "kind": "adam"}}
    (row,) = strip_times(history(run))
    assert row == {**plain, "optim/lr": 0.1, "optim/kind": "adam", "_step": 0}
    assert run.summary["best_at"] == "2026-01-03" and run.summary["optim/lr"] == 0.1
    with wandb.init(settings=quiet()) as run:
        with pytest.raises(ValueError, match=r"'raw'.*not UTF-8"):
            run.log({"raw": b"\xff"})
        with pytest.raises(ValueError, match=r"'z'.*complex"):
            run.log({"z": 1j})


def test_a_signaling_nan_and_a_model_class_are_told_clearly() -> None:
    """Decimal('sNaN') failed with float()'s own message, naming no key; a
    pydantic model's class (not an instance) failed with a TypeError from
    calling its model_dump unbound."""
    import decimal

    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        lr: float = 0.1

    with wandb.init(settings=quiet()) as run:
        run.log({"d": decimal.Decimal("sNaN")})
        with pytest.raises(ValueError, match=r"'m'.*ModelMetaclass"):
            run.log({"m": Model})
        run.config["m"] = Model  # a config keeps what it cannot log as its text
        assert run.config["m"] == str(Model)
        run.config["model"] = Model()
        assert run.config["model"] == {"lr": 0.1}
    (row,) = history(run)
    assert math.isnan(row["d"])
    with pytest.raises(wandb.WbtoolError, match="Model instance, not the class"):
        wandb.init(config=Model, settings=quiet())


def test_a_logged_nested_dict_reads_back_nested_from_the_summary() -> None:
    """History flattens {"acc": {"top1": ...}} to acc/top1; run.summary["acc"]
    was a KeyError where the reference's summary gives the nested values."""
    with wandb.init(settings=quiet()) as run:
        run.log({"acc": {"top1": 0.5, "top5": 0.9, "deep": {"x": 1}}})
        acc = run.summary["acc"]
        assert acc == {"top1": 0.5, "top5": 0.9, "deep": {"x": 1}} and "acc" in run.summary
        assert run.summary.acc.top1 == 0.5 and acc["deep"]["x"] == 1
        acc["top1"] = 0.7  # writes through to acc/top1
        run.summary.acc.best = 2
        del acc["deep"]
        with pytest.raises(KeyError, match="nope"):
            acc["nope"]
        with pytest.raises(KeyError):
            run.summary["ac"]
    saved = run._folder.read_json(run._folder.summary, {})
    assert {k: v for k, v in saved.items() if not k.startswith("_")} == {
        "acc/top1": 0.7, "acc/top5": 0.9, "acc/best": 2}


def test_a_nested_summary_group_is_deleted_as_a_whole() -> None:
    """"acc" in run.summary after logging {"acc": {...}}, but del
    run.summary["acc"] and run.summary.pop("acc") were KeyErrors."""
    with wandb.init(settings=quiet()) as run:
        run.log({"acc": {"top1": 0.5, "top5": 0.9}, "loss": {"train": 1}, "x": 1})
        del run.summary["acc"]
        assert "acc" not in run.summary and "acc/top1" not in run.summary
        assert dict(run.summary["loss"]) == {"train": 1}
        run.summary.pop("loss")
        assert "loss" not in run.summary
        del run.summary.x
        with pytest.raises(KeyError):
            del run.summary["acc"]
        with pytest.raises(AttributeError):
            del run.summary.nope
        run.log({"acc": {"top1": 0.7}})  # logged again: in the summary again
        assert run.summary["acc"]["top1"] == 0.7
    saved = run._folder.read_json(run._folder.summary, {})
    assert {k: v for k, v in saved.items() if not k.startswith("_")} == {"acc/top1": 0.7}


def test_a_deleted_summary_key_comes_back_when_it_is_logged_again() -> None:
    with wandb.init(settings=quiet()) as run:
        run.define_metric("best", summary="max")
        run.log({"acc": 0.5, "best": 0.9})
        run.summary["acc"] = 1.0
        del run.summary["acc"], run.summary["best"]
        assert "acc" not in run.summary and "best" not in run.summary
        run.log({"loss": 1})
        assert "acc" not in run.summary and "best" not in run.summary
        run.log({"acc": 0.7, "best": 0.4})
        assert run.summary["acc"] == 0.7 and run.summary["best"] == {"max": 0.4}
    saved = json.loads(Path(run._folder.summary).read_text())
    assert saved["acc"] == 0.7 and saved["best"] == {"max": 0.4}


def test_a_mean_of_an_int_past_any_float_is_infinite() -> None:
    """It raised OverflowError from inside the summary after the row was
    kept, leaving the rest of the row out of the summary and the mean's
    count one ahead of its total."""
    with wandb.init(settings=quiet()) as run:
        run.define_metric("big", summary="mean,max")
        run.define_metric("loss", summary="mean")
        run.log({"loss": 1.0})
        run.log({"big": 10**400, "loss": 3.0})
        run.log({"big": 1})
    assert run.summary["big"] == {"mean": math.inf, "max": 10**400}
    assert run.summary["loss"] == {"mean": 2.0} and run.summary["_step"] == 2
    assert [r.get("big") for r in history(run)] == [None, 10**400, 1]
    assert wandb.Api().run(run.id).summary["big"]["mean"] == math.inf


def test_summary_defaults_to_last_and_user_writes_win() -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"loss": 3, "acc": 0.1})
        run.summary["acc"] = 0.99
        run.log({"loss": 2, "acc": 0.2})
        run.summary.update({"extra": [1, 2]})
    saved = json.loads(Path(run._folder.summary).read_text())
    assert saved["loss"] == 2 and saved["acc"] == 0.99 and saved["extra"] == [1, 2]
    assert saved["_step"] == 1


def test_define_metric_summaries_and_globs() -> None:
    with wandb.init(settings=quiet()) as run:
        run.define_metric("loss", summary="min,max,mean,first,last")
        run.define_metric("train/*", summary="max")
        run.define_metric("hidden_metric", summary="none")
        m = run.define_metric("val_acc", goal="maximize", summary="best")
        assert m.name == "val_acc"
        for v in (3, 1, 2):
            run.log({"loss": v, "train/a": v * 10, "train/b": -v, "hidden_metric": v,
                     "val_acc": v / 10})
    s = run.summary
    assert s["loss"] == {"min": 1, "max": 3, "mean": 2.0, "first": 3, "last": 2}
    assert s["train/a"] == {"max": 30} and s["train/b"] == {"max": -1}
    assert "hidden_metric" not in s
    assert s["val_acc"] == {"best": 0.3}


def test_define_metric_merges_unless_overwrite() -> None:
    with wandb.init(settings=quiet()) as run:
        run.define_metric("x", step_metric="epoch")
        merged = run.define_metric("x", summary="max")
        assert merged.step_metric == "epoch" and merged.step_sync is True
        replaced = run.define_metric("x", summary="min", overwrite=True)
        assert replaced.step_metric is None


@pytest.mark.parametrize("kw", [{"summary": ["min"]}, {"step_metric": "e", "step_sync": "no"},
                                {"hidden": "yes"}, {"step_metric": 5}, {"goal": 1}])
def test_define_metric_refuses_arguments_of_the_wrong_type(kw: dict[str, Any]) -> None:
    with wandb.init(settings=quiet()) as run:
        with pytest.raises(TypeError, match=f"define_metric {list(kw)[-1]} must be a"):
            run.define_metric("m", **kw)
        run.log({"m": 1, "e": 2})
        run.log({"m": 3})
    assert strip_times(history(run))[1] == {"m": 3, "_step": 1}
    assert run._folder.read_run()["metrics"] == []


def test_step_metric_is_synced_into_rows() -> None:
    with wandb.init(settings=quiet()) as run:
        run.define_metric("epoch")
        run.define_metric("val/*", step_metric="epoch")
        run.log({"epoch": 1, "train": 0.5})
        run.log({"val/loss": 0.3})
        run.log({"epoch": 2})
        run.log({"val/loss": 0.2, "other": 1})
        run.define_metric("nosync", step_metric="epoch", step_sync=False)
        run.log({"nosync": 1})
    rows = strip_times(history(run))
    assert rows[1] == {"val/loss": 0.3, "epoch": 1, "_step": 1}
    assert rows[3] == {"val/loss": 0.2, "other": 1, "epoch": 2, "_step": 3}
    assert rows[4] == {"nosync": 1, "_step": 4}


def test_config_sources_and_allow_val_change(tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("lr: 0.1\nlayers:\n  value: 3\n  desc: depth\n")
    with wandb.init(config=str(yaml_file), settings=quiet()) as run:
        assert run.config.lr == 0.1 and run.config["layers"] == 3
    ns = argparse.Namespace(batch=32, epochs=3, secret_token="abc")
    with wandb.init(config=ns, config_exclude_keys=["epochs"], settings=quiet()) as run:
        assert dict(run.config) == {"batch": 32, "secret_token": "abc"}
    with wandb.init(config={"a": 1, "b": 2, "c": 3}, config_include_keys=["a", "c"],
                    settings=quiet()) as run:
        assert dict(run.config) == {"a": 1, "c": 3}
        run.config.a = 1  # same value: fine
        with pytest.raises(wandb.WbtoolError, match="allow_val_change"):
            run.config.a = 2
        with pytest.raises(ValueError):
            run.config.update({"c": 4})
        run.config.update({"c": 4}, allow_val_change=True)
        run.config.setdefaults({"c": 99, "d": 5})
        run.config["nested"] = {"x": 1}
        assert run.config.c == 4 and run.config.d == 5
    saved = run._folder.read_config()
    assert saved == {"a": 1, "c": 4, "d": 5, "nested": {"x": 1}}
    with wandb.init(config={"a": 1}, allow_val_change=True, settings=quiet()) as run:
        run.config.a = 2
        assert run.config.a == 2


def test_paths_are_kept_as_strings(tmp_path: Path) -> None:
    """``argparse`` with ``type=Path`` is the usual way to take a data folder:
    such a Namespace made init fail."""
    args = argparse.Namespace(data=tmp_path / "data", layers=[Path("a"), "b"])
    with wandb.init(config=args, settings=quiet()) as run:
        run.config.update({"out": Path("out")})
        run.summary["ckpt"] = tmp_path / "ckpt.pt"
        run.log({"file": Path("f.png")})
    assert run._folder.read_config() == {"data": str(tmp_path / "data"),
                                         "layers": ["a", "b"], "out": "out"}
    assert run.summary["ckpt"] == str(tmp_path / "ckpt.pt")
    assert history(run)[0]["file"] == "f.png"


def test_a_refused_config_update_changes_no_key() -> None:
    with wandb.init(config={"lr": 0.1}, settings=quiet()) as run:
        with pytest.raises(ValueError, match="allow_val_change"):
            run.config.update({"new": 1, "lr": 0.3, "other": 2})
        with pytest.raises(ValueError, match="not UTF-8"):
            run.config.update({"new": 1, "bad": b"\xff"})
        with pytest.raises(ValueError, match="not UTF-8"):
            run.config.setdefaults({"new": 1, "bad": b"\xff"})
        assert dict(run.config) == {"lr": 0.1}
    assert run._folder.read_config() == {"lr": 0.1}


class _Loss:
    def __str__(self) -> str:
        return "CrossEntropy(smoothing=0.1)"


def test_config_keeps_objects_of_other_types_as_their_text() -> None:
    """As the reference's config does: a framework's hyperparameters often hold
    an object (a loss, an optimizer class); a script must not stop on it.
    run.log still refuses one, naming it."""
    import argparse

    with wandb.init(config={"loss": _Loss(), "opt": {"cls": int}}, settings=quiet()) as run:
        run.config.update({"args": argparse.Namespace(lr=0.1, layers=[_Loss()])})
        with pytest.raises(ValueError, match="type _Loss are not supported"):
            run.log({"loss": _Loss()})
    assert run._folder.read_config() == {
        "loss": "CrossEntropy(smoothing=0.1)", "opt": {"cls": "<class 'int'>"},
        "args": {"lr": 0.1, "layers": ["CrossEntropy(smoothing=0.1)"]}}


class _BrokenText:
    def __str__(self) -> str:
        raise RuntimeError("not ready")


class _NumberText:
    def __str__(self) -> Any:
        return 5


def test_config_keeps_an_object_whose_text_fails_as_its_name() -> None:
    """An object whose __str__ raises (or gives no string) does not stop
    init(config=...) or run.config: it is kept as its type and address."""
    with wandb.init(config={"hook": _BrokenText()}, settings=quiet()) as run:
        run.config["other"] = _NumberText()
        run.config.update({"nested": {"hooks": [_BrokenText()]}})
    config = run._folder.read_config()
    assert config["hook"].startswith("<") and "_BrokenText object at 0x" in config["hook"]
    assert "_NumberText object at 0x" in config["other"]
    assert "_BrokenText object at 0x" in config["nested"]["hooks"][0]


def test_config_takes_number_keys_as_json_writes_them() -> None:
    """A model's config (transformers' to_dict, which its Trainer's callback puts
    in run.config) holds id2label with int keys: kept with the keys as text, as
    JSON writes them. run.log still refuses them."""
    model_config = {"id2label": {0: "NEGATIVE", 1: "POSITIVE"}, "label2id": {"NEGATIVE": 0},
                    "weights": {0.5: "half", True: "flag"}}
    with wandb.init(config={"num_labels": 2}, settings=quiet()) as run:
        run.config.update(model_config, allow_val_change=True)
        with pytest.raises(ValueError, match="logged keys must be strings"):
            run.log({"id2label": {0: "NEGATIVE"}})
    assert run._folder.read_config() == {
        "num_labels": 2, "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
        "label2id": {"NEGATIVE": 0}, "weights": {"0.5": "half", "true": "flag"}}


def test_config_paths_setting(tmp_path: Path) -> None:
    f = tmp_path / "base.yaml"
    f.write_text("dropout: 0.2\n")
    with wandb.init(config={"lr": 1}, settings=quiet(config_paths=[str(f)])) as run:
        assert dict(run.config) == {"dropout": 0.2, "lr": 1}


def test_identity_properties(store_dir: Path) -> None:
    import re

    with wandb.init(project="proj", entity="team", group="g", job_type="train",
                    notes="some notes", tags=["a", "b"], settings=quiet()) as run:
        assert re.fullmatch(r"[a-z0-9]{8}", run.id)
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", run.name or "")
        assert run.path == f"team/proj/{run.id}"
        assert run.project == "proj" and run.entity == "team"
        assert run.group == "g" and run.job_type == "train" and run.notes == "some notes"
        assert run.tags == ("a", "b")
        assert run.dir == str(store_dir / "runs" / run.id / "files")
        assert run.url == (store_dir / "runs" / run.id).resolve().as_uri()
        assert run.start_time > 1e9 and not run.resumed and run.offline and not run.disabled
        with pytest.raises(AttributeError):
            run.settings.project = "other"
    with pytest.raises(ValueError):
        wandb.init(id="bad id!", settings=quiet())
    with pytest.raises(ValueError):
        wandb.init(tags=["x" * 65], settings=quiet())


def test_tags_set_from_a_string_are_read_as_init_reads_them() -> None:
    with wandb.init(tags="solo", settings=quiet()) as run:
        assert run.tags == ("solo",)
        run.tags = "abc"  # type: ignore[assignment]
        assert run.tags == ("abc",)
        run.tags = "a,b"  # type: ignore[assignment]
        assert run.tags == ("a", "b")
        run.tags = [*run.tags, "c"]
    assert run._folder.read_run()["tags"] == ["a", "b", "c"]


def test_module_level_functions_follow_the_current_run() -> None:
    with pytest.raises(wandb.WbtoolError, match=r"wbtool.init\(\)"):
        wandb.log({"a": 1})
    run = wandb.init(config={"x": 1}, settings=quiet())
    assert wandb.run is run
    wandb.log({"a": 1})
    wandb.config.update({"y": 2})
    wandb.summary["best"] = 7
    assert run.config.y == 2 and run.summary["best"] == 7
    wandb.finish()
    assert wandb.run is None and run.state == "finished"
    assert [r["a"] for r in history(run)] == [1]


def test_module_level_config_and_summary_refuse_changes_without_a_run() -> None:
    assert dict(wandb.config) == {} and dict(wandb.summary) == {}
    changes = [lambda: wandb.config.update({"lr": 0.1}), lambda: setattr(wandb.config, "lr", 1),
               lambda: wandb.config.setdefaults({"lr": 1}), lambda: wandb.summary.update(a=1),
               lambda: wandb.summary.__setitem__("a", 1),
               lambda: wandb.summary.__setitem__("_step", 1)]
    for change in changes:
        with pytest.raises(wandb.WbtoolError, match=r"needs a run to change: call wbtool.init"):
            change()


def test_reinit_modes() -> None:
    first = wandb.init(settings=quiet())
    assert wandb.init(settings=quiet()) is first  # default: return_previous
    assert wandb.init(reinit="return_previous", settings=quiet()) is first
    other = wandb.init(reinit="create_new", settings=quiet())
    assert other is not first and wandb.run is first
    third = wandb.init(reinit="finish_previous", settings=quiet())
    assert first.state == "finished" and other.state == "finished"
    assert wandb.run is third
    third.finish()


def test_disabled_mode_writes_nothing(store_dir: Path) -> None:
    with wandb.init(mode="disabled", config={"a": 1}) as run:
        run.log({"x": 1})
        run.summary["y"] = 2
        run.config.b = 3
        run.define_metric("x", summary="max")
        run.alert("t", "x")
        assert run.disabled and run.summary["y"] == 2 and run.config.a == 1
        art = wandb.Artifact("d", "dataset")
        assert run.log_artifact(art) is art
        assert run.save("*.txt") == []
    assert not store_dir.exists()


def test_a_disabled_run_given_paths_or_names_creates_no_store(store_dir: Path,
                                                              tmp_path: Path) -> None:
    """Logging a file by its path hashed it into a store, and looking an
    artifact up by name created an empty one."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    with wandb.init(mode="disabled") as run:
        art = run.log_artifact(model, type="model")
        assert art.type == "model"
        run.log_model(model)
        run.link_model(model, "classifier")
        run.upsert_artifact(str(model), type="model", distributed_id="d")
        with pytest.raises(wandb.WbtoolError, match="nothing to log"):
            run.log_artifact(tmp_path / "missing")
        with pytest.raises(wandb.WbtoolError, match="not found"):
            run.use_artifact("data:latest")
        with pytest.raises(wandb.WbtoolError, match="not found"):
            run.use_model("model:latest")
    assert not store_dir.exists()


@pytest.mark.parametrize("project", ["../x", "a/b", "x:y"])
def test_init_refuses_an_invalid_project(store_dir: Path, project: str) -> None:
    from wbtool.errors import UsageError

    with pytest.raises(UsageError, match="invalid project name"):
        wandb.init(project=project, settings=quiet())
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())


def test_init_dir_of_the_wrong_type_names_the_setting(store_dir: Path) -> None:
    from wbtool.errors import SettingsError

    with pytest.raises(SettingsError, match="root_dir"):
        wandb.init(dir=5, settings=quiet())  # type: ignore[arg-type]
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())


def test_config_numbers_in_exponent_form_read_back_as_numbers_with_pyyaml(
        store_dir: Path) -> None:
    """config.yaml is JSON text; PyYAML (YAML 1.1) reads 5e-05, the usual
    learning rate of a transformers Trainer, as a string unless it has a point."""
    import yaml

    values = {"learning_rate": 5e-05, "big": 1e16, "tiny": -1.5e-10, "text": "5e-05",
              "list": [1e-08, 2], "nested": {"eps": 1e-08}, "1e5": 3}
    run = wandb.init(project="p", config=values, settings=quiet())
    run.finish()
    text = (store_dir / "runs" / run.id / "config.yaml").read_text()
    assert yaml.safe_load(text) == json.loads(text) == values
    assert wandb.Api().run(f"p/{run.id}").config == values


def test_non_finite_config_numbers_read_back_as_floats_with_pyyaml(store_dir: Path) -> None:
    """NaN, Infinity and -Infinity were written as JSON's words, which PyYAML
    reads as strings; YAML's .nan, .inf and -.inf read back as floats."""
    import yaml

    values = {"nan": math.nan, "inf": math.inf, "neg": -math.inf, "lr": 5e-05,
              "list": [math.inf, "NaN", ".nan"], "Infinity": "-.inf", "-.inf": 1}
    run = wandb.init(project="p", config=values, settings=quiet())
    run.finish()
    text = (store_dir / "runs" / run.id / "config.yaml").read_text()

    def same(doc: dict[str, Any]) -> None:
        assert math.isnan(doc.pop("nan"))
        assert doc == {k: v for k, v in values.items() if k != "nan"}

    same(yaml.safe_load(text))
    same(dict(wandb.Api().run(f"p/{run.id}").config))
    from wbtool.runs.folder import RunFolder

    same(RunFolder(store_dir / "runs" / run.id).read_config())

def test_one_config_key_given_as_a_string_is_one_key() -> None:
    """A string was read as a set of letters: ``config_include_keys="lr"``
    kept no key at all and ``config_exclude_keys="lr"`` dropped none."""
    config = {"lr": 0.1, "l": 1, "bs": 32}
    with wandb.init(config=config, config_include_keys="lr", settings=quiet()) as run:
        assert dict(run.config) == {"lr": 0.1}
    with wandb.init(config=config, config_exclude_keys="lr", settings=quiet()) as run:
        assert dict(run.config) == {"l": 1, "bs": 32}


@pytest.mark.parametrize("arg", ["config_include_keys", "config_exclude_keys"])
@pytest.mark.parametrize("value", [5, [1], [None]])
def test_config_key_lists_of_the_wrong_type_are_refused_by_name(store_dir: Path, arg: str,
                                                               value: object) -> None:
    with pytest.raises(ValueError, match=arg):
        wandb.init(config={"a": 1}, settings=quiet(), **{arg: value})
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())


@pytest.mark.parametrize("run_id", ["-x", "--", "-rf"])
def test_init_refuses_a_run_id_that_reads_as_an_option(store_dir: Path, run_id: str) -> None:
    """``wbtool runs show -x`` could never name such a run."""
    from wbtool.errors import UsageError

    with pytest.raises(UsageError, match=r"invalid run id .*must not start with '-'"):
        wandb.init(id=run_id, settings=quiet())
    assert not store_dir.exists()  # refused before the store is made


def test_context_manager_marks_failures() -> None:
    with pytest.raises(RuntimeError), wandb.init(settings=quiet()) as run:
        run.log({"a": 1})
        raise RuntimeError("boom")
    doc = run._folder.read_run()
    assert doc["state"] == "failed" and doc["exit_code"] == 1
    assert [r["a"] for r in history(run)] == [1]
    with wandb.init(settings=quiet()) as run:
        pass
    run.finish()  # twice is fine
    with pytest.raises(wandb.WbtoolError, match="finished"):
        run.log({"a": 1})
    run2 = wandb.init(settings=quiet())
    run2.finish(exit_code=3)
    assert run2._folder.read_run()["state"] == "failed"
    assert run2._folder.read_run()["exit_code"] == 3


def test_a_refused_summary_update_changes_no_key() -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"loss": 1.0})
        with pytest.raises(ValueError, match="not supported"):
            run.summary.update({"best": 0.5, "bad": object()})
        with pytest.raises(ValueError, match="keys must be strings"):
            run.summary.update({"best": 0.5, 1: 2})
        assert "best" not in run.summary
        run.log({"best": 0.7})
    assert run.summary["best"] == 0.7


def test_what_a_finished_run_cannot_keep_is_refused() -> None:
    with wandb.init(settings=quiet()) as run:
        run.log({"loss": 1.0})
        run.summary["best"] = 1.0
    calls = [lambda: run.summary.__setitem__("late", 1), lambda: run.summary.update(late=1),
             lambda: run.summary.__delitem__("best"), lambda: setattr(run, "name", "x"),
             lambda: setattr(run, "notes", "x"), lambda: setattr(run, "tags", ["x"]),
             lambda: run.define_metric("loss", summary="min")]
    for call in calls:
        with pytest.raises(wandb.WbtoolError, match="finished"):
            call()
    assert run.summary["best"] == 1.0 and "late" not in run.summary
    assert run._folder.read_json(run._folder.summary, {})["best"] == 1.0


@pytest.mark.parametrize(("field", "bad"), [
    ("notes", object()), ("notes", b"\xff"), ("notes", 5), ("notes", "a\udcffb"),
    ("name", None), ("name", 5), ("name", object()), ("name", "a\udcffb"),
])
def test_a_name_or_notes_run_json_cannot_keep_is_refused(field: str, bad: object) -> None:
    """Notes that JSON cannot write were kept in memory after the error, so
    that every later write of run.json failed: finish() too, which left the
    run running without its summary. A name was kept as its text ("None")."""
    from wbtool.errors import SettingsError

    run = wandb.init(settings=quiet(), name="first", notes="kept")
    run.log({"loss": 1.0})
    with pytest.raises(SettingsError, match=f"invalid setting 'run_{field}'"):
        setattr(run, field, bad)
    assert (run.name, run.notes) == ("first", "kept")
    run.log({"loss": 0.5})
    run.finish()
    public = wandb.Api().run(run.id)
    assert (public.state, public.name, public.notes) == ("finished", "first", "kept")
    assert public.summary["loss"] == 0.5
    run2 = wandb.init(settings=quiet())
    run2.name, run2.notes = "second", None
    run2.finish()
    assert (wandb.Api().run(run2.id).name, wandb.Api().run(run2.id).notes) == ("second", None)


@pytest.mark.parametrize("change", [
    lambda run: run.config["opt"].__setitem__("betas", {0.9}),
    lambda run: run.config["opt"].__setitem__("fn", object()),
    lambda run: run.config["opt"].__setitem__(1, "one"),
    lambda run: run.config["layers"].append(object()),
    lambda run: run.summary["best"].__setitem__("at", object()),
    lambda run: run.summary["best"].__setitem__((1, 2), "pair"),
    lambda run: run.summary["best"].__setitem__("me", run.summary["best"]),
])
def test_a_nested_value_changed_in_place_loses_no_run(change: Any) -> None:
    """A config or summary value holds dicts and lists that a script can
    change in place, past the checks of run.config and run.summary: one
    that JSON cannot write failed every later write, finish() too, which
    left the run running with no summary and without its later config."""
    run = wandb.init(settings=quiet(), config={"opt": {"lr": 0.1}, "layers": [64]})
    run.summary["best"] = {"acc": 0.5}
    run.log({"loss": 1.0})
    change(run)
    run.config["late"] = 1
    run.log({"loss": 0.5})
    run.finish()
    public = wandb.Api().run(run.id)
    assert public.state == "finished"
    assert public.summary["loss"] == 0.5 and public.summary["best"]["acc"] == 0.5
    assert public.config["late"] == 1 and public.config["opt"]["lr"] == 0.1
    assert json.loads(json.dumps(public.config)) == public.config


def test_a_run_tag_with_a_control_character_is_refused() -> None:
    """As an artifact's tag is: a newline or an escape in one broke listings."""
    from wbtool.errors import SettingsError

    with pytest.raises(SettingsError, match="control character"):
        wandb.init(settings=quiet(), tags=["a\nb"])
    with wandb.init(settings=quiet(), tags=["ok"]) as run:
        with pytest.raises(SettingsError, match="control character"):
            run.tags = ["x", "\x1b[2Jclear"]
        for bad in (5, {"a": 1}):  # 5 failed from inside: 'int' object is not iterable
            with pytest.raises(SettingsError, match=r"run_tags.*expected a list"):
                run.tags = bad  # type: ignore[assignment]
        assert run.tags == ("ok",)
    assert wandb.Api().run(run.id).tags == ["ok"]


def test_a_finished_runs_config_keeps_every_key() -> None:
    """Deleting a key of a finished run's config was taken in memory and
    never written, so run.config no longer showed what the run had."""
    with wandb.init(settings=quiet(), config={"lr": 0.1, "bs": 8}) as run:
        pass
    calls = [lambda: run.config.__delitem__("lr"), lambda: run.config.__delattr__("bs"),
             lambda: run.config.pop("lr"), lambda: run.config.clear(),
             lambda: run.config.__setitem__("lr", 0.2), lambda: run.config.update(x=1)]
    for call in calls:
        with pytest.raises(ValueError, match="finished"):
            call()
    assert dict(run.config) == {"lr": 0.1, "bs": 8}
    assert wandb.Api().run(run.id).config == {"lr": 0.1, "bs": 8}


def test_a_finished_run_takes_no_more_files_artifacts_or_alerts(tmp_path: Path) -> None:
    """They were written into the run after its end was recorded (and, online,
    after the run was pushed, so the remote never had them)."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    with wandb.init(settings=quiet()) as run:
        used = run.log_artifact(model, name="m", type="model")
    calls = [lambda: run.save(str(model)), lambda: run.log_artifact(model, type="model"),
             lambda: run.use_artifact("m:latest"), lambda: run.log_model(model),
             lambda: run.use_model("m:latest"), lambda: run.link_model(model, "reg"),
             lambda: run.link_artifact(used, "reg"), lambda: run.alert("late", "x"),
             lambda: run.log_code(str(tmp_path)),
             lambda: run.upsert_artifact(str(model), type="model", distributed_id="d"),
             lambda: run.finish_artifact(str(model), type="model", distributed_id="d")]
    for call in calls:
        with pytest.raises(wandb.WbtoolError, match="finished"):
            call()
    assert "model.pt" not in os.listdir(run._folder.files)
    assert [a.version for a in wandb.Api().artifacts()] == ["v0"]
    assert not any('"alert"' in line for line in
                   (run._folder.path / "events.jsonl").read_text().splitlines())
    assert run.name == run._folder.read_run()["name"] and run.tags == ()


@pytest.mark.parametrize(("code", "error"), [
    ("x", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError), (256, ValueError),
    (10**21, ValueError),
])
def test_finish_takes_an_exit_status_from_0_to_255(code: object, error: type) -> None:
    run = wandb.init(settings=quiet())
    with pytest.raises(error, match="exit_code must be an int from 0 to 255"):
        run.finish(exit_code=code)  # type: ignore[arg-type]
    assert run._folder.read_run()["state"] == "running"
    run.finish(exit_code=255)
    assert (run._folder.read_run()["state"], run._folder.read_run()["exit_code"]) == (
        "failed", 255)


def test_alerts_are_recorded_printed_and_rate_limited(capsys: pytest.CaptureFixture[str]) -> None:
    with wandb.init(settings={"console": "off"}) as run:
        run.alert("loss high", "loss is 9", level="WARN", wait_duration=300)
        run.alert("loss high", "again", level="WARN", wait_duration=300)  # rate-limited
        run.alert("other", "x")
        with pytest.raises(ValueError, match="64"):
            run.alert("t" * 65, "x")
        with pytest.raises(ValueError):
            run.alert("t", "x", level="LOUD")
        for wait in ("soon", float("nan"), -1, True):
            with pytest.raises(ValueError, match="wait_duration"):
                run.alert("t", "x", wait_duration=wait)
    alerts = [e for e in run._folder.read_events() if e["type"] == "alert"]
    assert [(a["title"], a["level"]) for a in alerts] == [("loss high", "WARN"),
                                                          ("other", "INFO")]
    err = capsys.readouterr().err
    assert "ALERT [WARN] loss high: loss is 9" in err and "again" not in err


def test_resume_modes() -> None:
    with pytest.raises(wandb.WbtoolError, match="not found"):
        wandb.init(id="missing1", resume="must", settings=quiet())
    run = wandb.init(id="abc12345", resume="allow", config={"lr": 1}, settings=quiet())
    assert not run.resumed
    run.log({"a": 1})
    run.log({"a": 2})
    run.summary["best"] = 5
    run.finish()
    with pytest.raises(wandb.WbtoolError, match="already exists and resume='never'"):
        wandb.init(id="abc12345", resume="never", settings=quiet())
    with pytest.raises(wandb.WbtoolError, match="already exists: pass resume='allow'"):
        wandb.init(id="abc12345", settings=quiet())
    again = wandb.init(id="abc12345", resume="must", settings=quiet())
    assert again.resumed and again.step == 2 and again.config.lr == 1
    assert again.summary["best"] == 5 and again.summary["a"] == 2
    again.log({"a": 3})
    again.finish()
    rows = history(again)
    assert [r["_step"] for r in rows] == [0, 1, 2]
    assert rows[2]["_runtime"] >= rows[1]["_runtime"]


@pytest.mark.parametrize("text", [b"{}", b"[1, 2]", b"", b"garbage"])
def test_a_run_whose_run_json_is_damaged_is_not_resumed_into(store_dir: Path,
                                                             text: bytes) -> None:
    """A new record over the old run's history would mix two runs: resuming
    one whose run.json is damaged is refused, naming the file."""
    run = wandb.init(id="dmg12345", settings=quiet())
    run.log({"a": 1})
    run.finish()
    record = store_dir / "runs" / "dmg12345" / "run.json"
    record.write_bytes(text)
    for kw in ({"id": "dmg12345", "resume": "allow"}, {"id": "dmg12345", "resume": "must"},
               {"resume_from": "dmg12345?_step=0"}):
        with pytest.raises(StoreError, match=f"{re.escape(str(record))} is damaged"):
            wandb.init(settings=quiet(), **kw)
    assert record.read_bytes() == text


def test_a_run_resumed_past_a_runtime_too_large_for_a_float_starts() -> None:
    """A history row (a pulled run's, say) whose ``_runtime`` is an integer of
    more digits than a float holds stopped the resume with a traceback."""
    with wandb.init(id="big12345", settings=quiet()) as run:
        run.log({"a": 1})
    with open(run._folder.history, "a") as f:
        f.write('{"_step": 1, "_runtime": 1' + "0" * 400 + '}\n')
    again = wandb.init(id="big12345", resume="allow", settings=quiet())
    assert again.resumed and again.step == 2
    again.finish()


def test_a_resumed_run_goes_on_aggregating_and_syncing_its_step_metric() -> None:
    """A resumed run's min, max, first and mean cover the whole run, and
    step_sync goes on inserting the step metric's last value: they started
    over from the first row logged after the resume."""
    with wandb.init(id="agg12345", settings=quiet()) as run:
        run.define_metric("loss", summary="min,max,mean,first,last")
        run.define_metric("epoch", summary="max")
        run.define_metric("val", step_metric="epoch")
        for epoch, loss in enumerate((3, 1, 2)):
            run.log({"loss": loss, "epoch": epoch})
    with wandb.init(id="agg12345", resume="must", settings=quiet()) as again:
        again.log({"loss": 2.5})
        again.log({"val": 0.7})
    assert again.summary["loss"] == {"min": 1, "max": 3, "mean": 2.125, "first": 3,
                                     "last": 2.5}
    assert strip_times(history(again))[-1] == {"val": 0.7, "epoch": 2, "_step": 4}
    with wandb.init(id="agg12345", resume_from="agg12345?_step=3", settings=quiet()) as back:
        back.log({"loss": 4})
    assert back.summary["loss"] == {"min": 1, "max": 4, "mean": 2.5, "first": 3, "last": 4}


def test_a_resumed_run_stays_in_its_project() -> None:
    """A restarted job that resumes by id alone must not move its run to the
    default project; naming another project is refused, not a move."""
    with wandb.init(project="mnist", id="keep1234", settings=quiet()) as run:
        run.log({"a": 1})
    again = wandb.init(id="keep1234", resume="must", settings=quiet())
    assert again.project == "mnist"
    again.finish()
    rewound = wandb.init(resume_from="keep1234?_step=0", settings=quiet())
    assert rewound.project == "mnist"
    rewound.finish()
    with pytest.raises(wandb.WbtoolError, match="is in project 'mnist', not 'other'"):
        wandb.init(id="keep1234", resume="allow", project="other", settings=quiet())
    assert [r.id for r in wandb.Api().runs("mnist")] == ["keep1234"]
    assert wandb.Api().runs("other") == []


def test_resume_auto_picks_up_a_crashed_run() -> None:
    run = wandb.init(project="p", settings=quiet())
    run.log({"a": 1})
    run._finish("crashed", 1)
    resumed = wandb.init(project="p", resume="auto", settings=quiet())
    assert resumed.id == run.id and resumed.resumed
    resumed.finish()
    fresh = wandb.init(project="p", resume="auto", settings=quiet())
    assert fresh.id != run.id  # the last one finished: a new run
    fresh.finish()


def test_fork_from_copies_the_first_steps() -> None:
    with wandb.init(config={"lr": 0.1}, settings=quiet()) as parent:
        parent.define_metric("loss", summary="min")
        for i in range(10):
            parent.log({"loss": 10 - i})
    fork = wandb.init(fork_from=f"{parent.id}?_step=4", settings=quiet())
    assert fork.id != parent.id and fork.step == 5 and fork.config.lr == 0.1
    assert fork.summary["loss"] == {"min": 6}
    fork.log({"loss": 0.5})
    fork.finish()
    assert [r["_step"] for r in history(fork)] == [0, 1, 2, 3, 4, 5]
    assert [r["_step"] for r in history(parent)] == list(range(10))
    assert fork._folder.read_run()["forked_from"] == {"run_id": parent.id, "step": 4}
    with pytest.raises(ValueError):
        wandb.init(fork_from=f"{parent.id}?epoch=4", settings=quiet())


def test_resume_from_rewinds_history() -> None:
    with wandb.init(settings=quiet()) as run:
        for i in range(10):
            run.log({"x": i})
    rewound = wandb.init(id=run.id, resume_from=f"{run.id}?_step=3", settings=quiet())
    assert rewound.id == run.id and rewound.step == 4 and rewound.summary["x"] == 3
    rewound.log({"x": 100})
    rewound.finish()
    assert [(r["_step"], r["x"]) for r in history(rewound)] == [
        (0, 0), (1, 1), (2, 2), (3, 3), (4, 100)]


def test_resume_from_and_fork_from_together_are_refused_and_rewind_nothing() -> None:
    with wandb.init(settings=quiet()) as run:
        for i in range(5):
            run.log({"x": i})
    with pytest.raises(ValueError, match="cannot be used together"):
        wandb.init(resume_from=f"{run.id}?_step=0", fork_from=f"{run.id}?_step=0",
                   settings=quiet())
    assert [r["_step"] for r in history(run)] == list(range(5))


@pytest.mark.parametrize("config", [{"x": b"\xff"}, {1: 2}])
def test_a_refused_config_rewinds_nothing_and_leaves_no_run(store_dir: Path,
                                                             config: dict[Any, Any]) -> None:
    with wandb.init(settings=quiet()) as run:
        for i in range(5):
            run.log({"x": i})
    for kw in ({"resume_from": f"{run.id}?_step=1"}, {"fork_from": f"{run.id}?_step=1"}, {}):
        with pytest.raises(ValueError):
            wandb.init(config=config, settings=quiet(), **kw)
    assert [r["_step"] for r in history(run)] == list(range(5))
    assert [p.name for p in (store_dir / "runs").iterdir()] == [run.id]


def test_an_active_run_of_this_process_cannot_be_resumed_beside_itself() -> None:
    run = wandb.init(settings=quiet())
    for i in range(3):
        run.log({"x": i})
    for kw in ({"id": run.id, "resume": "allow"}, {"resume_from": f"{run.id}?_step=0"}):
        with pytest.raises(ConflictError, match="active in this process"):
            wandb.init(reinit="create_new", settings=quiet(), **kw)
    run.log({"x": 3})
    run.finish()
    assert [(r["_step"], r["x"]) for r in history(run)] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert wandb.init(id=run.id, resume="allow", reinit="create_new",
                      settings=quiet()).step == 4


def test_mark_preempting() -> None:
    run = wandb.init(settings=quiet())
    run.mark_preempting()
    assert run._folder.read_run()["state"] == "preempting"
    run.finish()
    assert run._folder.read_run()["state"] == "finished"


def test_save_path_rules(tmp_path: Path) -> None:
    work = Path.cwd()
    (work / "these/are/myfiles").mkdir(parents=True)
    (work / "these/are/myfiles/a.txt").write_text("a")
    (work / "files/x").mkdir(parents=True)
    (work / "files/x/saveme.txt").write_text("s")
    absdir = tmp_path / "abs" / "run123"
    absdir.mkdir(parents=True)
    (absdir / "c.txt").write_text("c")
    with wandb.init(settings=quiet()) as run:
        files = Path(run.dir)
        run.save("these/are/myfiles/*", policy="now")
        run.save("these/are/myfiles/*", base_path="these", policy="now")
        run.save(str(absdir / "*.txt"), policy="now")
        run.save(str(absdir / "*.txt"), base_path=str(tmp_path), policy="now")
        run.save("files/*/saveme.txt")
        with pytest.raises(ValueError):
            run.save("these/*", base_path="elsewhere")
        with pytest.raises(ValueError):
            run.save("x", policy="sometimes")
        with pytest.raises(ValueError, match="glob_str must be a path or a glob, not int"):
            run.save(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="base_path must be a path or a glob, not list"):
            run.save("x", base_path=["a"])  # type: ignore[arg-type]
        assert (files / "these/are/myfiles/a.txt").read_text() == "a"
        assert (files / "are/myfiles/a.txt").read_text() == "a"
        assert (files / "run123/c.txt").read_text() == "c"
        assert (files / "abs/run123/c.txt").read_text() == "c"
        (work / "live.txt").write_text("v1")
        run.save("live.txt", policy="live")
        run.save("end.txt", policy="end")
        (work / "end.txt").write_text("late")  # created after the call: not matched
        (work / "live.txt").write_text("v2 longer")
    assert (files / "files/x/saveme.txt").read_text() == "s"
    assert (files / "live.txt").read_text() == "v2 longer"
    assert not (files / "end.txt").exists()


def test_restore_from_another_run(tmp_path: Path) -> None:
    Path("model.txt").write_text("weights")
    with wandb.init(project="p", settings=quiet()) as first:
        first.save("model.txt", policy="now")
    os.remove("model.txt")
    with wandb.init(project="p", settings=quiet()) as second:
        f = second.restore("model.txt", run_path=first.path)
        assert f.read() == "weights"
        f.close()
        assert (Path(second.dir) / "model.txt").read_text() == "weights"
        with pytest.raises(ValueError):
            second.restore("nope.txt", run_path=first.path)
    f = wandb.restore("model.txt", run_path=f"p/{first.id}", root=str(tmp_path / "out"))
    assert f.read() == "weights"
    f.close()


def test_a_run_path_in_another_entity_is_not_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Api().run, Api().runs and restore(run_path=) follow the artifacts'
    rule: where the ``entity`` setting names this store's entity, a path
    naming another is not found (never read as this store's); without the
    setting, any entity is this store's. A path of too many parts, or a
    project path naming another project, is refused, not cut short."""
    from wbtool.errors import InvalidNameError, NotFoundError, OtherEntityError

    monkeypatch.setenv("WBTOOL_ENTITY", "team")
    Path("model.txt").write_text("weights")
    with wandb.init(project="p", settings=quiet()) as run:
        run.save("model.txt", policy="now")
    api = wandb.Api()
    assert api.run(f"team/p/{run.id}").id == run.id
    assert [r.id for r in api.runs("team/p")] == [run.id]
    with pytest.raises(OtherEntityError, match=r"'other'.*'team'"):
        api.run(f"other/p/{run.id}")
    with pytest.raises(OtherEntityError, match=r"'other'.*'team'"):
        api.runs("other/p")
    with pytest.raises(OtherEntityError, match=r"'other'.*'team'"):
        wandb.restore("model.txt", run_path=f"other/p/{run.id}", root=str(tmp_path / "o1"))
    with pytest.raises(NotFoundError):  # the run is in p, not q
        wandb.restore("model.txt", run_path=f"team/q/{run.id}", root=str(tmp_path / "o2"))
    for bad in ("a/b/c/d", "a/b/c", "bad name"):
        with pytest.raises(InvalidNameError, match="project"):
            api.runs(bad)
    monkeypatch.delenv("WBTOOL_ENTITY")  # no entity named: any entity is this store's
    api = wandb.Api()
    assert api.run(f"other/p/{run.id}").id == run.id
    assert [r.id for r in api.runs("other/p")] == [run.id]
    f = wandb.restore("model.txt", run_path=f"other/p/{run.id}", root=str(tmp_path / "o3"))
    assert f.read() == "weights"
    f.close()


def test_public_history_arguments_are_checked() -> None:
    """keys="loss" was read as the keys l, o, s and s (no row had them all,
    so nothing came back); a samples, min_step or stream of the wrong kind
    failed from inside or was ignored."""
    with wandb.init(project="p", settings=quiet()) as run:
        for i in range(3):
            run.log({"loss": i, "acc": 2 * i})
    public = wandb.Api().run(f"p/{run.id}")
    assert [r["loss"] for r in public.scan_history(keys="loss")] == [0, 1, 2]
    assert [r["loss"] for r in public.history(keys="loss", pandas=False)] == [0, 1, 2]
    assert [r["loss"] for r in public.scan_history(keys=["loss"], min_step=1)] == [1, 2]
    assert public.history(stream="events", pandas=False) == []  # no system samples
    calls = [
        (lambda: list(public.scan_history(keys=["loss", 5])), TypeError, "keys must be strings"),
        (lambda: list(public.scan_history(min_step="1")), TypeError, "min_step must be an int"),
        (lambda: list(public.scan_history(max_step=2.5)), TypeError, "max_step must be an int"),
        (lambda: public.history(samples="10"), TypeError, "samples must be an int"),
        (lambda: public.history(stream="metrics"), ValueError, "stream must be 'default'"),
        (lambda: public.history(pandas="no"), TypeError, "pandas must be True or False"),
    ]
    for call, error, message in calls:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize("bad", [5, None, b"p/abc"])
def test_a_run_path_that_is_no_text_is_refused(bad: object) -> None:
    """It failed with AttributeError from inside ('int' has no 'strip')."""
    from wbtool.errors import InvalidNameError

    with pytest.raises(InvalidNameError, match=f"invalid run path {re.escape(repr(bad))}"):
        wandb.Api().run(bad)  # type: ignore[arg-type]
    if bad is not None:  # no path: the current project's runs
        with pytest.raises(InvalidNameError, match="invalid project path"):
            wandb.Api().runs(bad)  # type: ignore[arg-type]


def test_public_run_files_are_file_objects_that_download(tmp_path: Path) -> None:
    """Api().run(...).files() and .file(name) give File objects (name, size,
    url, download) as the reference's public API does, not bare names."""
    Path("sub").mkdir()
    Path("sub/model.txt").write_text("weights")
    Path("notes.txt").write_text("n")
    with wandb.init(project="p", settings=quiet()) as run:
        run.save("sub/model.txt", policy="now")
        run.save("notes.txt", policy="now")
    api_run = wandb.Api().run(f"p/{run.id}")
    files = {f.name: f for f in api_run.files()}
    assert {"sub/model.txt", "notes.txt"} <= set(files)
    model = files["sub/model.txt"]
    assert str(model) == model.name == "sub/model.txt"
    assert model.size == 7 and model.url.startswith("file://")
    assert Path(model.path).read_text() == Path(os.fspath(model)).read_text() == "weights"
    assert [f.name for f in api_run.files(names=["notes.txt"])] == ["notes.txt"]
    assert [f.name for f in api_run.files(names="notes.txt")] == ["notes.txt"]  # one name
    assert api_run.file("sub/model.txt") == model

    root = tmp_path / "out"
    with model.download(str(root)) as f:
        assert f.read() == "weights"
    assert (root / "sub/model.txt").read_text() == "weights"
    (root / "sub/model.txt").write_text("mine")
    with pytest.raises(ValueError, match="replace=True"):
        model.download(root)
    with model.download(root, exist_ok=True) as f:
        assert f.read() == "mine"
    with model.download(root, replace=True) as f:
        assert f.read() == "weights"
    with pytest.raises(wandb.WbtoolError, match="not found"):
        api_run.file("nope.txt")


def test_log_code_makes_a_code_artifact() -> None:
    Path("train.py").write_text("print('hi')\n")
    Path("pkg").mkdir()
    Path("pkg/util.py").write_text("x = 1\n")
    Path("notes.md").write_text("no")
    with wandb.init(project="p", settings=quiet()) as run:
        art = run.log_code()
        assert art is not None and art.type == "code"
        assert sorted(e.path for e in art.manifest) == ["pkg/util.py", "train.py"]
        only = run.log_code(name="mine", include_fn=lambda p: p.endswith(".md"))
        assert only is not None and [e.path for e in only.manifest] == ["notes.md"]
    assert art.logged_by().id == run.id


def test_lineage_log_and_use_artifacts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    with wandb.init(project="p", settings=quiet()) as producer:
        producer.log({"x": 1})
        art = producer.log_artifact(str(data), name="ds", type="dataset", aliases=["best"],
                                    tags=["t1"])
        assert art.version == "v0" and "best" in art.aliases and art.history_step == 0
    with wandb.init(project="p", settings=quiet()) as consumer:
        used = consumer.use_artifact("ds:best")
        assert used.version == "v0"
        assert consumer.use_artifact("p/ds:v0").digest == art.digest
        assert consumer.use_artifact(f"{consumer.entity}/p/ds:latest").digest == art.digest
        # no entity setting: a team's entity in a script reads this store's
        assert consumer.use_artifact("someone/p/ds:latest").digest == art.digest
        path = used.download(str(tmp_path / "dl"))
        assert (Path(path) / "a.csv").read_text() == "1,2\n"
    logged_by = wandb.Api().artifact("p/ds:v0").logged_by()
    assert logged_by.id == producer.id
    assert [r.id for r in wandb.Api().artifact("p/ds:v0").used_by()] == [consumer.id]
    api_run = wandb.Api().run(f"p/{consumer.id}")
    assert [a.name for a in api_run.used_artifacts()] == ["ds:v0"]
    assert [a.name for a in wandb.Api().run(producer.id).logged_artifacts()] == ["ds:v0"]


def test_history_step_is_the_step_of_the_runs_latest_row(tmp_path: Path, cli: Cli) -> None:
    """An artifact's history_step was the run's next step, at which no row
    may ever be logged, and 0 before any; the reference: "the nearest step at
    which history metrics were logged for the source run"."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"0")

    def logged(run: Any, name: str) -> Any:
        model.write_bytes(name.encode())
        return run.log_artifact(model, name=name, type="model")

    with wandb.init(project="p", settings=quiet()) as run:
        steps = {"none": logged(run, "none").history_step}
        run.log({"a": 1})
        steps["first"] = logged(run, "first").history_step
        run.log({"a": 2}, step=5, commit=True)
        run.log({"a": 3}, step=9)  # the row being built at step 9
        steps["pending"] = logged(run, "pending").history_step
        run.log({"a": 4}, step=20)  # commits 9; 20 holds a row too, being built
        run.log({"a": 5})
        steps["jumped"] = logged(run, "jumped").history_step
        run.upsert_artifact(str(model), name="shared", type="model", distributed_id="d")
        steps["shared"] = run.finish_artifact(str(model), name="shared", type="model",
                                              distributed_id="d").history_step
    assert steps == {"none": None, "first": 0, "pending": 9, "jumped": 20, "shared": 20}
    api = wandb.Api()
    rows = api.run(f"p/{run.id}").history(samples=100, keys=["a"], pandas=False)
    assert {r["_step"] for r in rows} == {0, 5, 9, 20}
    with wandb.init(project="p", id=run.id, resume="must", settings=quiet()) as resumed:
        assert logged(resumed, "resumed").history_step == 20
    with wandb.init(project="p", settings=quiet(resume_from=f"{run.id}?_step=7")) as rewound:
        assert logged(rewound, "rewound").history_step == 5
    with wandb.init(project="p", settings=quiet(fork_from=f"{run.id}?_step=3")) as fork:
        assert logged(fork, "forked").history_step == 0
        fork.log({"a": 6})
        assert logged(fork, "forked-on").history_step == 4
    info = cli("artifact", "info", "--json", "p/first:v0", check=True).json()
    assert info["result"]["history_step"] == 0  # type: ignore[index]


def test_log_model_use_model_link_model(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x00weights")
    with wandb.init(project="p", settings=quiet()) as run:
        run.log_model(str(model), name="net")
        linked = run.link_model(str(model), "classifier", name="net", aliases=["prod"])
        assert "prod" in linked.aliases
        path = run.use_model("net:latest")
        assert (Path(path) / "model.pt").read_bytes() == b"\x00weights"
        run.log_artifact(wandb.Artifact("notmodel", "dataset"))
        with pytest.raises(AssertionError):
            run.use_model("notmodel:latest")
    assert wandb.Api().artifact("model-registry/classifier:prod").digest == linked.digest


def test_one_alias_or_tag_given_as_a_string_is_one_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    with wandb.init(project="p", settings=quiet()) as run:
        art = run.log_artifact(str(data), name="ds", type="dataset", aliases="best",  # type: ignore[arg-type]
                               tags="t1")  # type: ignore[arg-type]
        assert sorted(art.aliases) == ["best", "latest"] and art.tags == ["t1"]
        used = run.use_artifact("ds:v0", aliases="prod")  # type: ignore[arg-type]
        assert sorted(used.aliases) == ["best", "latest", "prod"]
        linked = run.link_artifact(art, "portfolio", aliases="staging")  # type: ignore[arg-type]
        assert sorted(linked.aliases) == ["latest", "staging"]
    stored = wandb.Api().artifact("p/ds:v0")
    assert sorted(stored.aliases) == ["best", "latest", "prod"] and stored.tags == ["t1"]


def test_threads_logging_to_one_run_each_keep_every_row_whole() -> None:
    """Four threads log 20,000 rows each into one run while its writer
    thread flushes: every line of history.jsonl is JSON, every call is one row
    of its own (calls once took each other's pending row, leaving one empty
    and one holding two calls' data) and every step is there once."""
    import sys
    import threading

    run = wandb.init(project="p", settings=quiet())
    per_thread = 20_000

    def logger(k: int) -> None:
        for i in range(per_thread):
            if k % 2:
                run.log({f"t{k}": i}, commit=True)  # the general path
            else:
                run.log({f"t{k}": i})  # the fast path of a flat dict

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, inside a call too
    try:
        threads = [threading.Thread(target=logger, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    run.finish()
    lines = Path(run._folder.history).read_bytes().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 4 * per_thread
    assert sorted(r["_step"] for r in rows) == list(range(4 * per_thread))
    logged = [sorted(k for k in r if not k.startswith("_")) for r in rows]
    assert sum(1 for keys in logged if len(keys) != 1) == 0
    for k in range(4):
        assert [r[f"t{k}"] for r in rows if f"t{k}" in r] == list(range(per_thread))


# -- arguments that are True or False ----------------------------------------------------


def test_a_string_for_commit_is_refused_not_read_as_true() -> None:
    """``commit="no"`` committed the row, as any non-empty string is true:
    the row was written, then the next call's values went to the next step."""
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 1}, commit=False)
        for value in ("no", "False", b"no", 0.0, 1.5):
            with pytest.raises(TypeError, match="commit must be True or False, not"):
                run.log({"b": 2}, commit=value)
        with pytest.raises(TypeError, match="commit must be"):
            wandb.log({"b": 2}, commit="no")
        assert run.step == 0
        run.log({"c": 3})
        np = pytest.importorskip("numpy")
        run.log({"d": 4}, commit=np.bool_(False))  # a NumPy bool is a bool
        run.log({"e": 5}, commit=np.bool_(True))
    assert strip_times(history(run)) == [{"a": 1, "c": 3, "_step": 0},
                                         {"d": 4, "e": 5, "_step": 1}]


def test_a_whole_number_for_commit_is_read_for_its_truth_as_in_wandb() -> None:
    """``commit=1``, ``commit=0`` and ``commit=np.int64(1)`` raised TypeError,
    though W&B takes any whole number for its truth."""
    np = pytest.importorskip("numpy")
    with wandb.init(settings=quiet()) as run:
        run.log({"a": 1}, commit=0)
        run.log({"b": 2}, commit=1)
        run.log({"c": 3}, commit=np.int64(0))
        run.log({"d": 4}, commit=np.int64(1))
        wandb.log({"e": 5}, commit=0)
        wandb.log({"f": 6}, commit=1)
    assert strip_times(history(run)) == [{"a": 1, "b": 2, "_step": 0},
                                         {"c": 3, "d": 4, "_step": 1},
                                         {"e": 5, "f": 6, "_step": 2}]


def test_other_true_or_false_arguments_of_a_run_refuse_strings(tmp_path: Path) -> None:
    """Each was read as true: ``replace="no"`` wrote over a file, ``quiet="no"``
    was quiet, ``allow_val_change="no"`` changed a config value."""
    Path("model.txt").write_text("weights")
    with wandb.init(project="p", settings=quiet()) as first:
        first.save("model.txt", policy="now")
    with wandb.init(project="p", config={"lr": 1}, settings=quiet()) as run:
        with pytest.raises(TypeError, match="allow_val_change must be True or False"):
            run.config.update({"lr": 2}, allow_val_change="no")
        assert run.config.lr == 1
        with pytest.raises(TypeError, match="define_metric overwrite must be a bool"):
            run.define_metric("m", overwrite="no")
        Path(run.dir, "model.txt").write_text("mine")
        with pytest.raises(TypeError, match="replace must be True or False"):
            run.restore("model.txt", run_path=first.path, replace="no")
        with pytest.raises(TypeError, match="replace must be True or False"):
            wandb.restore("model.txt", run_path=first.path, replace="no")
        with pytest.raises(TypeError, match="quiet must be True or False"):
            run.finish(quiet="no")
        assert run.state == "running"
        assert Path(run.dir, "model.txt").read_text() == "mine"
    remote = wandb.Api().run(f"p/{first.id}").file("model.txt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.txt").write_text("mine")
    for kw in ({"replace": "no"}, {"exist_ok": "no"}):
        with pytest.raises(TypeError, match=f"{next(iter(kw))} must be True or False"):
            remote.download(str(out), **kw)
    assert (out / "model.txt").read_text() == "mine"
    for arg in ("sync_tensorboard", "tensorboard", "monitor_gym"):
        with pytest.raises(TypeError, match=f"{arg} must be True or False"):
            wandb.init(settings=quiet(), **{arg: "no"})


# -- keys wbtool sets in every row ---------------------------------------------------------


def test_a_logged_step_key_is_dropped_with_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """``run.log({"_step": 5, "x": 1})`` lost the 5 without a word: wbtool sets
    ``_step`` itself. It says so once, naming the key and step=; likewise for
    the other keys it writes into rows (a row copied from a history has them
    all), in every way a row is made."""
    with wandb.init(settings={"console": "off"}) as run:
        run.log({"_step": 5, "x": 1})
        run.log({"_step": 6, "x": 2})
        run.log({"_runtime": 1.0, "_timestamp": "2.0", "_label": "mine", "x": 3}, commit=False)
        run.log({"y": {"z": 4}, "_step": 7}, step=2, commit=True)
        run.log({"_private": 5, "x": 6})  # other keys that start with _ are the user's
    assert strip_times(history(run)) == [
        {"x": 1, "_step": 0}, {"x": 2, "_step": 1}, {"x": 3, "y/z": 4, "_step": 2},
        {"_private": 5, "x": 6, "_step": 3}]
    assert all(r["_runtime"] < 1000 and r["_timestamp"] > 1e9 and "_label" not in r
               for r in history(run))
    assert run.summary["_step"] == 3
    warnings = [line for line in capsys.readouterr().err.splitlines() if "reserved" in line]
    assert warnings == [
        "wbtool: WARNING run.log: the key '_step' is reserved, so its value was dropped "
        "(pass step= to run.log to log to a given step)",
        *(f"wbtool: WARNING run.log: the key {key!r} is reserved, so its value was dropped "
          "(wbtool sets it in every row)" for key in ("_runtime", "_timestamp", "_label")),
    ]


def test_a_logged_timestamp_that_is_a_number_is_the_rows_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``run.log({"_timestamp": t})`` dropped t with a warning, but W&B keeps
    it as the row's time: a script replaying old logs keeps their times. A
    finite number is kept, in every way a row is made; anything else is
    dropped with one warning, and the row gets the time it was logged."""
    np = pytest.importorskip("numpy")
    with wandb.init(settings={"console": "off"}) as run:
        run.log({"_timestamp": 1_600_000_000.5, "x": 1})  # one flat dict: the quick way
        run.log({"_timestamp": 1_600_000_001, "x": 2})
        run.log({"_timestamp": 1_600_000_002.0, "y": {"z": 3}}, commit=False)
        run.log({"x": 3}, step=2)
        run.log({"_timestamp": np.float64(1_600_000_003.0), "x": 4}, step=3, commit=True)
        for bad in ("1600000004", float("nan"), float("inf"), True, None, 10**400):
            run.log({"_timestamp": bad, "x": 5})
        assert run.summary["_timestamp"] > 1e9
    rows = history(run)
    assert [r["_timestamp"] for r in rows[:4]] == [1_600_000_000.5, 1_600_000_001,
                                                  1_600_000_002.0, 1_600_000_003.0]
    assert all(r["_timestamp"] > 1.7e9 and r["x"] == 5 for r in rows[4:]) and len(rows) == 10
    assert all(r["_runtime"] < 1000 for r in rows)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert warnings == ["wbtool: WARNING run.log: the key '_timestamp' is reserved, so its "
                        "value was dropped (wbtool sets it in every row)"]
    with wandb.init(settings=quiet()) as last:
        last.log({"_timestamp": 1_500_000_000.0, "x": 1})
    assert json.loads(Path(last._folder.summary).read_text())["_timestamp"] == 1_500_000_000.0


def test_rows_logged_with_old_timestamps_are_not_taken_for_rows_waiting_long() -> None:
    """How long the oldest row not yet written has waited (past half a second,
    run.log waits for the writer) is read from when it was logged, not from
    a ``_timestamp`` the user gave: rows of old logs replayed would each
    read as years late."""
    with wandb.init(settings=quiet()) as run:
        history_writer = run._history
        assert history_writer is not None
        with history_writer._lock:  # no flush while the row waits
            run.log({"_timestamp": 1_000_000.0, "x": 1})
            assert history_writer.pending == 1
            assert 0 <= history_writer.lag(time.time()) < 60


def test_a_summary_value_under_a_reserved_key_is_dropped_with_one_warning(
        capsys: pytest.CaptureFixture[str], cli: Cli) -> None:
    """``run.summary["_step"] = 99`` was kept over the real step for good (a
    value set by hand wins), ``_runtime`` set so moved a resumed run's clock
    on by as much, and a crashed run's summary caught up only from the rows
    past the false step. As run.log does, run.summary drops a value under a
    key wbtool sets in every row, with one warning a key, however it is set
    (a summary copied from another run holds them all)."""
    with wandb.init(project="p", settings={"console": "off"}) as run:
        for i in range(3):
            run.log({"loss": i})
        run.summary["_step"] = 99
        run.summary["_step"] = 100
        run.summary._runtime = 1e6
        run.summary.update({"_timestamp": 5.0, "_label": "mine", "best": 1}, _step=7)
        run.summary.setdefault("_private", 2)  # other keys that start with _ are the user's
        run.log({"_step": 5, "loss": 3})  # run.log's own warning, said apart
    saved = json.loads(Path(run._folder.summary).read_text())
    assert saved["_step"] == 3 and saved["_runtime"] < 1000 and saved["_timestamp"] > 1e9
    assert "_label" not in saved and saved["best"] == 1 and saved["_private"] == 2
    assert run._folder.read_run()["summary_user_keys"] == ["_private", "best"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert warnings == [
        "wbtool: WARNING run.summary: the key '_step' is reserved, so its value was dropped "
        "(pass step= to run.log to log to a given step)",
        *(f"wbtool: WARNING run.summary: the key {key!r} is reserved, so its value was "
          "dropped (wbtool sets it in every row)" for key in ("_runtime", "_timestamp", "_label")),
        "wbtool: WARNING run.log: the key '_step' is reserved, so its value was dropped "
        "(pass step= to run.log to log to a given step)",
    ]

    with wandb.init(project="p", id=run.id, resume="allow", settings=quiet()) as again:
        again.log({"loss": 4})
        again.log({"loss": 5})
    rows = history(run)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert all(r["_runtime"] < 1000 for r in rows)
    listed = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
    assert [(r["summary"]["_step"], r["runtime"] < 1000) for r in listed] == [(5, True)]


def test_deleting_a_reserved_summary_key_keeps_it(capsys: pytest.CaptureFixture[str]) -> None:
    """``del run.summary["_step"]`` left a finished run's summary without the
    step it reached, which a crashed run's summary is caught up from: the key
    stays, with a warning, and ``clear()`` takes out only the user's keys."""
    with wandb.init(settings={"console": "off"}) as run:
        run.log({"loss": 1})
        run.summary["best"] = 1
        del run.summary["_step"]
        del run.summary._step
        with pytest.raises(AttributeError):
            del run.summary._label  # not in the summary: nothing to keep
        run.summary.clear()
        assert sorted(run.summary) == ["_runtime", "_step", "_timestamp"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert warnings == ["wbtool: WARNING run.summary: the key '_step' is reserved, so it was "
                        "not deleted (wbtool sets it in every row)"]
    saved = json.loads(Path(run._folder.summary).read_text())
    assert sorted(saved) == ["_runtime", "_step", "_timestamp"] and saved["_step"] == 0


def test_a_step_set_by_hand_in_an_older_summary_gives_way_to_the_real_one() -> None:
    """A run whose summary holds a ``_step`` or ``_runtime`` set by hand (as
    wbtool kept them before it dropped those) shows its real step again once
    it is resumed, and its clock goes on from where it was."""
    with wandb.init(settings=quiet()) as run:
        run.log({"loss": 1})
        run.summary["best"] = 1
    folder = run._folder
    folder.write_json(folder.summary, {**json.loads(Path(folder.summary).read_text()),
                                       "_step": 99, "_runtime": 1e6})
    folder.write_json(folder.run_json, {**folder.read_run(),
                                        "summary_user_keys": ["_runtime", "_step", "best"]})
    with wandb.init(id=run.id, resume="allow", settings=quiet()) as again:
        again.log({"loss": 2})
    saved = json.loads(Path(folder.summary).read_text())
    assert saved["_step"] == 1 and saved["_runtime"] < 1e6 and saved["best"] == 1
    assert folder.read_run()["summary_user_keys"] == ["best"]


def test_a_crashed_run_with_a_step_set_by_hand_in_an_older_summary_is_caught_up(
        tmp_path: Path) -> None:
    """A crashed run's summary is caught up from the history rows past its
    ``_step``; one set by hand (``_step=99``, as wbtool once kept it) hid
    every row, so the run resumed with the summary of its first row. It is
    made again from the whole history (a mean not counting a row twice),
    with the keys set by hand kept."""
    with wandb.init(settings=quiet()) as run:
        run.define_metric("loss", summary="mean")
        for loss in (1.0, 2.0, 6.0):
            run.log({"loss": loss, "acc": loss / 10})
    folder = run._folder
    summary = json.loads(Path(folder.summary).read_text())
    # As a run killed after its first summary write was left by an older wbtool.
    folder.write_json(folder.summary, {**summary, "loss": {"mean": 1.0}, "acc": 0.1, "_step": 99,
                                       "best": 7})
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    folder.write_json(folder.run_json, {**folder.read_run(), "state": "running",
                                        "pid": dead.pid, "summary_user_keys": ["_step", "best"],
                                        "summary_counts": {"loss": 1}})
    with wandb.init(id=run.id, resume="must", settings=quiet()) as again:
        assert again.summary["loss"] == {"mean": 3.0} and again.summary["acc"] == 0.6
        assert again.summary["_step"] == 2 and again.summary["best"] == 7
        again.log({"loss": 7.0})
    saved = json.loads(Path(folder.summary).read_text())
    assert (saved["loss"], saved["_step"], saved["best"]) == ({"mean": 4.0}, 3, 7)


# -- resuming with a config ---------------------------------------------------------------


def test_resuming_with_a_different_config_value_says_so(capfd: pytest.CaptureFixture[str]
                                                         ) -> None:
    """``init(id=X, resume="allow", config=...)`` wrote over a saved value
    without a word. It still takes the new value (a job restarted after a
    kill must not stop over its config), with a warning naming both; keys
    equal or new pass quietly, and allow_val_change=True silences it."""
    with wandb.init(id="cfgrun01", config={"lr": 0.1, "bs": 4, "nan": float("nan")},
                    settings=quiet()) as run:
        run.log({"a": 1})
        run.log({"a": 2})
    capfd.readouterr()
    for kw in ({"resume": "allow"}, {"resume": "must"}, {"resume_from": "cfgrun01?_step=1"}):
        with wandb.init(id="cfgrun01", config={"lr": 0.2, "bs": 4, "nan": float("nan")},
                        **kw) as again:
            assert again.config.lr == 0.2
        err = capfd.readouterr().err
        assert err.count("resuming run") == 1, err
        assert ("wbtool: WARNING resuming run cfgrun01 with config lr=0.2 over its saved 0.1 "
                "(pass allow_val_change=True to change it without this warning)") in err
        with wandb.init(id="cfgrun01", resume="allow", config={"lr": 0.1},
                        allow_val_change=True, settings=quiet()):
            pass
        capfd.readouterr()
    with wandb.init(id="cfgrun01", resume="allow", config={"lr": 0.1, "new": 1}):
        pass
    with wandb.init(id="cfgrun01", resume="allow", config={"lr": 0.3}, allow_val_change=True):
        pass
    assert "WARNING" not in capfd.readouterr().err
    config = run._folder.read_config()
    assert config["lr"] == 0.3 and config["bs"] == 4 and config["new"] == 1


class _Options:
    """An object with no text of its own: kept as ``<... object at 0x...>``."""


def _step_fn() -> Any:
    def schedule(step: int) -> int:
        return step
    return schedule


def test_resuming_with_equal_config_values_says_nothing(capfd: pytest.CaptureFixture[str]
                                                         ) -> None:
    """A config value kept as the text of an object (which holds its memory
    address, new in every process) and a NaN inside a value were each
    taken for a change, with a warning on every resume; a key that changed
    is shown escaped, as a run's name is."""
    first, fn = _Options(), _step_fn()
    config = {"opt": first, "fn": fn, "sched": {"warmup": float("nan"), "lr": [1, float("nan")]},
              "grid": [float("nan")], "k\x1b[2Jey": 1}
    with wandb.init(id="cfgrun02", config=config, settings=quiet()):
        pass
    assert first is not _Options() and fn is not _step_fn()
    capfd.readouterr()
    again_config = {**config, "opt": _Options(), "fn": _step_fn()}
    with wandb.init(id="cfgrun02", resume="allow", config=again_config):
        pass
    assert "WARNING" not in capfd.readouterr().err
    changed = {**again_config, "sched": {"warmup": 2.0, "lr": [1, float("nan")]}, "k\x1b[2Jey": 2}
    with wandb.init(id="cfgrun02", resume="allow", config=changed):
        pass
    err = capfd.readouterr().err
    assert err.count("WARNING") == 2, err
    assert "with config sched={'lr': [1, nan], 'warmup': 2.0} over its saved" in err or \
        "with config sched={'warmup': 2.0, 'lr': [1, nan]} over its saved" in err, err
    assert "with config k\\x1b[2Jey=2 over its saved 1" in err and "\x1b" not in err


def test_a_run_needing_its_folder_is_refused_as_damaged_or_missing(store_dir: Path) -> None:
    """One rule for a run whose record cannot be read, whichever part of
    wbtool looks: its folder there, run.json is damaged or missing; listed
    in the index only, its folder is missing; else no such run. A folder
    without run.json that changed a moment ago is a run being created."""
    import shutil
    import time

    from wbtool.context import Context, project_settings
    from wbtool.errors import NotFoundError, RunRecordDamagedError
    from wbtool.runs.folder import RunFolder, being_born, read_record
    from wbtool.runs.public import get_run

    with wandb.init(id="need1234", settings=quiet()) as run:
        run.log({"a": 1})
    ctx = Context.from_settings(project_settings(None), need_project=False)
    folder = RunFolder(store_dir / "runs" / "need1234")
    assert read_record(folder)["id"] == "need1234"
    assert get_run(ctx, "need1234", need_folder=True).id == "need1234"
    folder.run_json.write_text("garbage")
    assert get_run(ctx, "need1234").id == "need1234"  # the index's copy
    with pytest.raises(RunRecordDamagedError, match="is damaged"):
        get_run(ctx, "need1234", need_folder=True)
    folder.run_json.unlink()
    assert being_born(folder, time.time())
    assert not being_born(folder, time.time() + 3600)
    with pytest.raises(RunRecordDamagedError, match="is missing"):
        read_record(folder, indexed=True)
    shutil.rmtree(folder.path)
    with pytest.raises(StoreError, match="is in the store's index but its folder"):
        get_run(ctx, "need1234", need_folder=True)
    with pytest.raises(NotFoundError, match="p/need1234"):
        read_record(folder, name="p/need1234")
