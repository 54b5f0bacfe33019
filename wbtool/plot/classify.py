"""Charts of a classifier's results: ``confusion_matrix``, ``pr_curve`` and
``roc_curve``, computed in plain Python (numpy is not needed) with W&B's
tables and spec ids.

Scores and labels may be lists, numpy arrays, tensors or pandas objects.
``y_probas`` holds a row of scores per sample, a column per class: with
integer labels, column ``c`` scores class ``c``; with other labels (strings),
the columns follow the labels in sorted order, one column for each.
"""

from __future__ import annotations

import bisect
from typing import Any

from wbtool.media.table import Table
from wbtool.plot.chart import CustomChart, plot_table
from wbtool.plot.inputs import as_list, label, matrix, same_length, title_text

DIGITS = 3  # curves' values are rounded as W&B rounds them


# -- confusion matrix -------------------------------------------------------------------

def confusion_matrix(probs: Any = None, y_true: Any = None, preds: Any = None,
                     class_names: Any = None, title: str = "",
                     split_table: bool = False) -> CustomChart:
    """How often each true class was predicted as each class: a row
    ``[actual, predicted, count]`` for every pair of classes.

    Give ``preds`` (a predicted label per sample) or ``probs`` (a row of
    class scores per sample; the highest is the prediction), not both. With
    ``class_names``, labels are class indexes ``0 .. len(class_names) - 1``;
    without, the classes are the labels seen, in sorted order, named
    ``Class_1``, ``Class_2``, ...
    """
    if probs is not None and preds is not None:
        raise ValueError("give probs or preds, not both")
    if probs is None and preds is None:
        raise ValueError("give probs (class scores per sample) or preds (a label per sample)")
    truth = [label(v, "y_true") for v in as_list(y_true, "y_true")]
    if probs is not None:
        scores = matrix(probs, "probs")
        predicted: list[Any] = [row.index(max(row)) for row in scores]
        same_length(scores, "probs", truth, "y_true")
    else:
        predicted = [label(v, "preds") for v in as_list(preds, "preds")]
        same_length(predicted, "preds", truth, "y_true")
    if class_names is not None:
        names = [str(n) for n in as_list(class_names, "class_names")]
        if not names:
            raise ValueError("class_names is empty")
        index = {i: i for i in range(len(names))}
        for what, values in (("y_true", truth), ("probs" if probs is not None else "preds",
                                                  predicted)):
            for v in values:
                if type(v) is not int or not 0 <= v < len(names):
                    raise ValueError(f"{what} holds class {v!r}, outside 0..{len(names) - 1} "
                                     f"(the indexes of the {len(names)} class_names)")
    else:
        seen = set(truth) | set(predicted)
        try:
            classes = sorted(seen)
        except TypeError:
            raise ValueError("y_true and preds mix ints and strings: give labels of one "
                             "kind") from None
        index = {c: i for i, c in enumerate(classes)}
        names = [f"Class_{i + 1}" for i in range(len(classes))]
    n = len(names)
    counts = [[0] * n for _ in range(n)]
    for t, p in zip(truth, predicted, strict=True):
        counts[index[t]][index[p]] += 1
    data = [[names[i], names[j], counts[i][j]] for i in range(n) for j in range(n)]
    table = Table(columns=["Actual", "Predicted", "nPredictions"], data=data)
    return plot_table("wandb/confusion_matrix/v1", table,
                      {"Actual": "Actual", "Predicted": "Predicted",
                       "nPredictions": "nPredictions"},
                      {"title": title_text(title)}, split_table)


# -- curves -------------------------------------------------------------------------------

def _classes(y_true: Any, y_probas: Any, labels: Any,
             classes_to_plot: Any) -> tuple[list[Any], list[list[float]],
                                            list[tuple[Any, int, Any]]]:
    """The labels, the scores, and for each class to plot: (class, its column,
    its name in the table)."""
    truth = [label(v, "y_true") for v in as_list(y_true, "y_true")]
    scores = matrix(y_probas, "y_probas")
    same_length(truth, "y_true", scores, "y_probas")
    classes = set(truth)
    ints = all(type(c) is int for c in classes)
    if not ints and any(type(c) is int for c in classes):
        raise ValueError("y_true mixes ints and strings: give labels of one kind")
    ordered = sorted(classes)
    width = len(scores[0])
    names = None if labels is None else [str(n) for n in as_list(labels, "labels")]
    if ints:
        for c in ordered:
            if not 0 <= c < width:
                raise ValueError(f"y_true holds class {c}, outside 0..{width - 1} (the "
                                 f"columns of y_probas)")
            if names is not None and c >= len(names):
                raise ValueError(f"labels has {len(names)} names; y_true holds class {c}")
    elif len(ordered) != width:
        raise ValueError(f"y_true holds {len(ordered)} classes and y_probas has {width} "
                         "columns: give a column per class, in the classes' sorted order")
    wanted = ordered
    if classes_to_plot is not None:
        picked = {label(v, "classes_to_plot") for v in as_list(classes_to_plot,
                                                                 "classes_to_plot")}
        wanted = [c for c in ordered if c in picked]
        if not wanted:
            raise ValueError("classes_to_plot names none of the classes y_true holds "
                             f"({', '.join(map(repr, ordered))})")
    plotted = []
    for i, c in enumerate(ordered):
        if c in wanted:
            col = c if ints else i
            plotted.append((c, col, names[c] if ints and names is not None else c))
    return truth, scores, plotted


def _counts(truth: list[Any], scores: list[list[float]], cls: Any,
            col: int) -> tuple[list[int], list[int], int, int]:
    """For each distinct score of column ``col``, highest first: how many
    samples of class ``cls`` (true positives) and of others (false positives)
    score at least that; and the number of positives and negatives."""
    pairs = sorted(((row[col], t == cls) for row, t in zip(scores, truth, strict=True)),
                   key=lambda p: -p[0])
    tps: list[int] = []
    fps: list[int] = []
    tp = fp = 0
    for i, (score, positive) in enumerate(pairs):
        if positive:
            tp += 1
        else:
            fp += 1
        if i + 1 == len(pairs) or pairs[i + 1][0] != score:  # the last of a tie
            tps.append(tp)
            fps.append(fp)
    return tps, fps, tp, fp


def precision_at(recalls: list[float], precisions: list[float],
                 grid: list[float]) -> list[float]:
    """Interpolated precision at each recall of ``grid``: the highest precision
    reached at that recall or more. ``recalls`` must be in increasing order."""
    best = precisions[:]
    for i in range(len(best) - 2, -1, -1):
        best[i] = max(best[i], best[i + 1])
    return [best[bisect.bisect_left(recalls, r)] for r in grid]


def pr_curve(y_true: Any, y_probas: Any, labels: Any = None, classes_to_plot: Any = None,
             interp_size: int = 21, title: str = "", split_table: bool = False) -> CustomChart:
    """Precision against recall, one curve per class (that class against the
    rest), at ``interp_size`` recalls evenly spaced from 1 down to 0.

    The precision at a recall is the highest precision of any threshold whose
    recall is at least that (the curve never rises as recall grows), as W&B
    draws it; at recall 0 it is 1. The table holds rows ``[class, precision,
    recall]``, rounded to 3 places; ``labels[c]`` names integer class ``c``.
    """
    if isinstance(interp_size, bool) or not isinstance(interp_size, int) or interp_size < 2:
        raise ValueError(f"interp_size must be an int of at least 2, not {interp_size!r}")
    truth, scores, plotted = _classes(y_true, y_probas, labels, classes_to_plot)
    # k / (n - 1), not numpy's linspace: a recall of 7/20 is the grid's 0.35 exactly
    # (linspace makes it 0.35000000000000003, which that recall would miss)
    grid = [(interp_size - 1 - k) / (interp_size - 1) for k in range(interp_size)]
    data = []
    for cls, col, name in plotted:
        tps, fps, positives, _ = _counts(truth, scores, cls, col)
        recalls = [0.0] + [tp / positives for tp in tps]
        precisions = [1.0] + [tp / (tp + fp) for tp, fp in zip(tps, fps, strict=True)]
        for r, p in zip(grid, precision_at(recalls, precisions, grid), strict=True):
            data.append([name, round(p, DIGITS), round(r, DIGITS)])
    table = Table(columns=["class", "precision", "recall"], data=data)
    return plot_table("wandb/area-under-curve/v0", table,
                      {"x": "recall", "y": "precision", "class": "class"},
                      {"title": title_text(title), "x-axis-title": "Recall",
                       "y-axis-title": "Precision"}, split_table)


def roc_points(tps: list[int], fps: list[int]) -> list[tuple[int, int]]:
    """The corners of a ROC curve: (0, 0), then each threshold's (false
    positives, true positives) where the curve turns, and the last one."""
    keep = [0] + [i for i in range(1, len(tps) - 1)
                  if tps[i + 1] - 2 * tps[i] + tps[i - 1] or fps[i + 1] - 2 * fps[i] + fps[i - 1]]
    if len(tps) > 1:
        keep.append(len(tps) - 1)
    return [(0, 0)] + [(fps[i], tps[i]) for i in keep]


def roc_curve(y_true: Any, y_probas: Any, labels: Any = None, classes_to_plot: Any = None,
              title: str = "", split_table: bool = False) -> CustomChart:
    """True positive rate against false positive rate, one curve per class
    (that class against the rest), a point per threshold where the curve
    turns (from (0, 0) to (1, 1)). The table holds rows ``[class, fpr, tpr]``,
    rounded to 3 places, a row for each point that rounding leaves distinct
    (so a million samples make at most 2001 rows a class); ``labels[c]`` names
    integer class ``c``."""
    truth, scores, plotted = _classes(y_true, y_probas, labels, classes_to_plot)
    data = []
    for cls, col, name in plotted:
        tps, fps, positives, negatives = _counts(truth, scores, cls, col)
        if negatives == 0:
            raise ValueError(f"y_true holds only class {cls!r}: a ROC curve needs samples "
                             "of other classes too")
        last = None
        for fp, tp in roc_points(tps, fps):
            point = (round(fp / negatives, DIGITS), round(tp / positives, DIGITS))
            if point != last:  # one row per rounded point: at most 2001 a class
                data.append([name, *point])
                last = point
    table = Table(columns=["class", "fpr", "tpr"], data=data)
    return plot_table("wandb/area-under-curve/v0", table,
                      {"x": "fpr", "y": "tpr", "class": "class"},
                      {"title": title_text(title), "x-axis-title": "False positive rate",
                       "y-axis-title": "True positive rate"}, split_table)
