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
