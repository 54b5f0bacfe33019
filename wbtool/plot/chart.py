"""``CustomChart``: a ``wbtool.Table`` and the chart drawn from it, as W&B's
``wandb.plot`` helpers return.

Logged by ``run.log``, the table is written as a logged table is
(``media/table/<key>_<step>_<hash>.table.json``) and the history row holds
``{"_type": "custom-chart", "spec_name": "wandb/line/v0", "fields": {...},
"string_fields": {"title": ...}, "split_table": false, "table": {<the
table's row>}}``: the chart's W&B spec id, which column each field of the
chart reads and its texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wbtool.media.base import Media, is_run_target
from wbtool.media.table import Table

LOG_TYPE = "custom-chart"


@dataclass
class CustomChartSpec:
    """What W&B draws a chart with: its spec id, the table column each of the
    chart's fields reads, and its texts (the title, axis titles)."""

    spec_name: str
    fields: dict[str, Any]
    string_fields: dict[str, Any] = field(default_factory=dict)
    split_table: bool = False


class CustomChart(Media):
    """A chart of a table: ``chart.table`` (a ``wbtool.Table``) and ``chart.spec``."""

    _log_type = LOG_TYPE

    def __init__(self, table: Table, spec: CustomChartSpec) -> None:
        self.table = table
        self.spec = spec

    @property
    def spec_name(self) -> str:
        return self.spec.spec_name

    @property
    def fields(self) -> dict[str, Any]:
        return self.spec.fields

    @property
    def string_fields(self) -> dict[str, Any]:
        return self.spec.string_fields

    @property
    def title(self) -> str:
        return str(self.spec.string_fields.get("title") or "")

    def __repr__(self) -> str:
        return (f"<CustomChart {self.spec.spec_name} of {self.table.nrows} rows x "
                f"{self.table.ncols} columns>")

    def _description(self) -> dict[str, Any]:
        return {"_type": LOG_TYPE, "spec_name": self.spec.spec_name,
                "fields": dict(self.spec.fields),
                "string_fields": dict(self.spec.string_fields),
                "split_table": bool(self.spec.split_table)}

    def _to_row(self, target: Any, key: str) -> dict[str, Any]:
        row = self._description()
        if is_run_target(target):
            row["table"] = self.table._to_row(target, key)
        else:  # in a table's cell added to an artifact: the table's document inline
            row["table"] = self.table.to_json(target)
        return row


def plot_table(vega_spec_name: str, data_table: Table, fields: Mapping[str, Any],
               string_fields: Mapping[str, Any] | None = None,
               split_table: bool = False) -> CustomChart:
    """A chart of ``data_table`` drawn with the W&B spec ``vega_spec_name``;
    ``fields`` maps the spec's fields to the table's columns."""
    if not isinstance(data_table, Table):
        raise ValueError(f"data_table must be a wbtool.Table, not {type(data_table).__name__}")
    if not isinstance(vega_spec_name, str) or not vega_spec_name:
        raise ValueError(f"vega_spec_name must be a non-empty string, not {vega_spec_name!r}")
    return CustomChart(data_table, CustomChartSpec(vega_spec_name, dict(fields),
                                                   dict(string_fields or {}),
                                                   bool(split_table)))


def chart_name(spec_name: str) -> str:
    """A chart's kind in words, from its W&B spec id: ``"wandb/line/v0"`` is
    ``"line"``, ``"wandb/area-under-curve/v0"`` is ``"area under curve"``."""
    parts = spec_name.split("/")
    name = parts[1] if len(parts) == 3 and parts[0] == "wandb" else spec_name
    return {"lineseries": "line series", "confusion_matrix": "confusion matrix"}.get(
        name, name.replace("-", " ").replace("_", " "))
