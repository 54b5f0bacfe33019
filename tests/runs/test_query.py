"""Filters of ``Api().runs(filters=...)``."""

from __future__ import annotations

import re
from typing import Any

import pytest

import wbtool
from wbtool.errors import UsageError


@pytest.mark.parametrize(("filters", "problem"), [
    ({"name": {"$regex": "["}}, "bad $regex '['"),
    ({"name": {"$in": 5}}, "$in takes a list"),
    ({"$and": 5}, "$and takes a list of filters"),
    ({"$or": [5]}, "a filter must be a mapping"),
    ({"$not": 3}, "a filter must be a mapping"),
    ({5: 1}, "unknown filter operator 5"),
    ("state=finished", "a filter must be a mapping"),
])
def test_a_malformed_filter_is_a_usage_error(filters: Any, problem: str) -> None:
    api = wbtool.Api()
    with pytest.raises(UsageError, match=re.escape(problem)):
        api.runs("p", filters=filters)  # no runs yet: refused all the same
    with wbtool.init(project="p", settings=wbtool.Settings(quiet=True)) as run:
        run.log({"acc": 1})
    with pytest.raises(UsageError, match=re.escape(problem)):
        api.runs("p", filters=filters)


def test_a_condition_that_is_not_operators_is_a_value_to_equal() -> None:
    """Both the check and the match read ``{1: "finished"}`` as a value (it
    once passed the check and then failed the match with AttributeError)."""
    with wbtool.init(project="p", settings=wbtool.Settings(quiet=True)) as run:
        run.log({"acc": 1})
    assert wbtool.Api().runs("p", filters={"state": {1: "finished"}}) == []
    assert len(wbtool.Api().runs("p", filters={"state": {"$eq": "finished"}})) == 1


def test_a_regex_matches_a_list_by_any_of_its_strings() -> None:
    from wbtool.runs.query import matches

    doc = {"tags": ["baseline", "best"], "name": "run", "config": {"ids": [1, 2]}}
    assert matches(doc, {"tags": {"$regex": "^be"}})
    assert not matches(doc, {"tags": {"$regex": "^z"}})
    assert not matches(doc, {"config.ids": {"$regex": "1"}})  # numbers are not text
    assert matches(doc, {"name": {"$regex": "u"}})


@pytest.mark.parametrize(("order", "expected"), [
    ("x", ["one", "two", "abc", "zz", "none", "nan"]),
    ("-x", ["two", "one", "zz", "abc", "none", "nan"]),
])
def test_sorting_puts_numbers_before_text_either_way(order: str, expected: list[str]) -> None:
    """Numbers by value, then text by text, then runs without the key; a
    descending sort reverses each part, not the parts' order."""
    from wbtool.runs.query import sort_runs

    items = [{"n": "abc", "x": "abc"}, {"n": "one", "x": 1}, {"n": "none"},
             {"n": "zz", "x": "zz"}, {"n": "two", "x": 2.5}, {"n": "nan", "x": float("nan")}]
    sort_runs(items, lambda d: d, order)
    assert [d["n"] for d in items] == expected


def test_a_dotted_key_finds_nested_and_flat_keys_with_dots_or_slashes() -> None:
    """W&B scripts log ``train/loss``; a summary stores a nested ``{"a": {"b":
    2}}`` as ``a/b``: ``summary.a.b`` finds both, and a flat ``a.b``."""
    logged = {"nested": {"a": {"b": 2}}, "dot": {"a.b": 2}, "slash": {"a/b": 2},
              "small": {"a/b": 0}, "other": {"ab": 2}, "train": {"train/loss": 2},
              "deep": {"x": {"y/z": 2}}}
    for name, data in logged.items():
        with wbtool.init(project="p", name=name, config={"opt": {"lr": 2}, "x.y": 2},
                         settings=wbtool.Settings(quiet=True)) as run:
            run.log(data)
    api = wbtool.Api()

    def found(key: str) -> set[str]:
        return {r.name for r in api.runs("p", filters={key: {"$gt": 1}})}

    assert found("summary.a.b") == {"nested", "dot", "slash"}
    assert found("summary_metrics.a/b") == {"nested", "slash"}
    assert found("summary.train/loss") == found("summary.train.loss") == {"train"}
    assert found("summary.x.y.z") == found("summary.x/y.z") == {"deep"}
    assert found("config.opt.lr") == found("config.x.y") == set(logged)
    assert found("summary.a.c") == found("summary.a") == found("config.opt.lr.x") == set()
    order = [r.name for r in api.runs("p", order="-summary.a.b")]
    assert order[:3] == ["slash", "dot", "nested"] and order[3] == "small"


@pytest.mark.parametrize("order", [5, None, ["-created_at"]])
def test_an_order_that_is_no_text_is_a_usage_error(order: Any) -> None:
    """It failed with AttributeError from inside ('int' has no 'strip')."""
    with pytest.raises(UsageError, match=re.escape(f"order must be a string such as "
                                                   f"'-created_at', not {order!r}")):
        wbtool.Api().runs("p", order=order)
