"""``wbtool.plot``: W&B's chart helpers, named and shaped as ``wandb.plot``'s.

Each helper returns a :class:`CustomChart`: a ``wbtool.Table`` of the data
and the chart drawn from it (W&B's spec id, the column each field reads, the
title). ``run.log({"pr": wbtool.plot.pr_curve(y_true, y_probas, labels)})``
writes the table into the run's ``media/table/`` folder and the chart's
description into the history row. Curves and matrices are computed in plain
Python: numpy, pandas and scikit-learn are not needed.
"""

from __future__ import annotations

from wbtool.plot.basic import bar, histogram, line, line_series, scatter
from wbtool.plot.chart import CustomChart, CustomChartSpec, plot_table
from wbtool.plot.classify import confusion_matrix, pr_curve, roc_curve

__all__ = ["CustomChart", "CustomChartSpec", "bar", "confusion_matrix", "histogram", "line",
           "line_series", "plot_table", "pr_curve", "roc_curve", "scatter"]
