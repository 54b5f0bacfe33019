"""wbtool.plot: each chart helper logged to a real run in the test's store and
read back from the run folder; curves and matrices checked against values
worked out by hand; bad input refused in words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wbtool
from tests.conftest import quiet_run
from wbtool.runs.history import iter_rows

pytestmark = pytest.mark.usefixtures("finish_runs")


def start(**kw: Any) -> Any:
    return quiet_run("plots", **kw)


def logged(value: Any, key: str = "chart") -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Log ``value`` under ``key`` in a new run: (the run, the row's value, the
    table document its file holds)."""
    run = start()
    run.log({key: value})
    run.finish()
    (row,) = list(iter_rows(Path(run._folder.history)))
    doc = row[key]
    table = doc["table"]
    body = (run._folder.path / table["path"]).read_bytes()
    assert len(body) == table["size"]
    return run, doc, json.loads(body)


def curve(content: dict[str, Any]) -> dict[Any, list[tuple[float, float]]]:
    """A curve table's rows as {class: [(x, y), ...]}, columns class, y, x for a
    PR table (W&B's order) and class, x, y for a ROC table."""
    out: dict[Any, list[tuple[float, float]]] = {}
    pr = content["columns"] == ["class", "precision", "recall"]
    for cls, a, b in content["data"]:
        out.setdefault(cls, []).append((b, a) if pr else (a, b))
    return out


# -- the package --------------------------------------------------------------------------

def test_import_wbtool_leaves_plot_unloaded_until_used() -> None:
    code = ("import sys, wbtool; assert 'wbtool.plot' not in sys.modules; "
            "assert 'plot' in dir(wbtool) and 'plot' in wbtool.__all__; "
            "import wbtool.plot as p; assert wbtool.plot is p; "
            "chart = wbtool.plot.confusion_matrix(y_true=[0, 1], preds=[1, 1]); "
            "assert 'numpy' not in sys.modules, 'numpy was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- charts of a table --------------------------------------------------------------------

def test_line_scatter_bar_and_histogram_log_their_table_and_fields() -> None:
    table = wbtool.Table(columns=["epoch", "loss", "split"],
                         data=[[0, 1.0, "train"], [1, 0.5, "train"], [0, 1.2, "val"]])
    cases = [
        (wbtool.plot.line(table, "epoch", "loss", stroke="split", title="Loss"),
         "wandb/line/v0", {"x": "epoch", "y": "loss", "stroke": "split"}),
        (wbtool.plot.line(table, "epoch", "loss"),
         "wandb/line/v0", {"x": "epoch", "y": "loss", "stroke": None}),
        (wbtool.plot.scatter(table, "epoch", "loss", title="Loss"),
         "wandb/scatter/v0", {"x": "epoch", "y": "loss"}),
        (wbtool.plot.bar(table, "split", "loss", title="Loss"),
         "wandb/bar/v0", {"label": "split", "value": "loss"}),
        (wbtool.plot.histogram(table, "loss", title="Loss", split_table=True),
         "wandb/histogram/v0", {"value": "loss"}),
    ]
    for chart, spec, fields in cases:
        assert isinstance(chart, wbtool.plot.CustomChart) and chart.table is table
        _, doc, content = logged(chart, "eval/chart")
        assert doc["_type"] == "custom-chart" and doc["spec_name"] == spec
        assert doc["fields"] == fields
        assert doc["string_fields"]["title"] == chart.title
        assert doc["split_table"] is (spec == "wandb/histogram/v0")
        assert doc["table"]["_type"] == "table-file"
        assert (doc["table"]["nrows"], doc["table"]["ncols"]) == (3, 3)
        assert doc["table"]["path"].startswith("media/table/eval_chart_0_")
        assert content["columns"] == ["epoch", "loss", "split"]
        assert content["data"] == table.data


def test_line_series_with_shared_and_separate_xs() -> None:
    chart = wbtool.plot.line_series([1, 2, 3], [[10, 20, 30], [3, 2, 1]], keys=["up", "down"],
                                    title="Two", xname="epoch")
    _, doc, content = logged(chart)
    assert doc["spec_name"] == "wandb/lineseries/v0"
    assert doc["string_fields"] == {"title": "Two", "xname": "epoch"}
    assert content["columns"] == ["step", "lineKey", "lineVal"]
    assert content["data"] == [[1, "up", 10], [2, "up", 20], [3, "up", 30],
                               [1, "down", 3], [2, "down", 2], [3, "down", 1]]
    chart = wbtool.plot.line_series([[0, 1], [5]], [[1.0, 2.0], [9.0]])
    assert chart.table.data == [[0, "line_0", 1.0], [1, "line_0", 2.0], [5, "line_1", 9.0]]


def test_numpy_inputs_give_what_lists_give() -> None:
    np = pytest.importorskip("numpy")
    xs, ys = np.arange(3), np.array([[1.5, 2.5, 3.5]])
    assert wbtool.plot.line_series(xs, ys).table == wbtool.plot.line_series(
        [0, 1, 2], [[1.5, 2.5, 3.5]]).table
    y_true, probas = [0, 1, 1, 0], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]]
    for helper in (wbtool.plot.pr_curve, wbtool.plot.roc_curve):
        assert helper(np.array(y_true), np.array(probas)).table == \
            helper(y_true, probas).table
    assert wbtool.plot.confusion_matrix(probs=np.array(probas), y_true=np.array(y_true)) \
        .table == wbtool.plot.confusion_matrix(probs=probas, y_true=y_true).table


def test_pandas_inputs_give_what_lists_give() -> None:
    pd = pytest.importorskip("pandas")
    y_true, probas = [0, 1, 1, 0], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]]
    frame = pd.DataFrame(probas, columns=["no", "yes"])
    for helper in (wbtool.plot.pr_curve, wbtool.plot.roc_curve):
        assert helper(pd.Series(y_true), frame).table == helper(y_true, probas).table
    assert wbtool.plot.confusion_matrix(probs=frame, y_true=pd.Series(y_true)).table == \
        wbtool.plot.confusion_matrix(probs=probas, y_true=y_true).table


# -- confusion matrix ---------------------------------------------------------------------

def test_confusion_matrix_of_three_classes_counts_each_pair() -> None:
    # true 0 -> 0, 0; true 1 -> 2; true 2 -> 2, 1, 2
    chart = wbtool.plot.confusion_matrix(y_true=[0, 0, 1, 2, 2, 2], preds=[0, 0, 2, 2, 1, 2],
                                         class_names=["cat", "dog", "owl"], title="CM")
    _, doc, content = logged(chart)
    assert doc["spec_name"] == "wandb/confusion_matrix/v1"
    assert doc["fields"] == {"Actual": "Actual", "Predicted": "Predicted",
                             "nPredictions": "nPredictions"}
    assert content["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert content["data"] == [
        ["cat", "cat", 2], ["cat", "dog", 0], ["cat", "owl", 0],
        ["dog", "cat", 0], ["dog", "dog", 0], ["dog", "owl", 1],
        ["owl", "cat", 0], ["owl", "dog", 1], ["owl", "owl", 2],
    ]


def test_confusion_matrix_from_probs_and_without_class_names() -> None:
    probs = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.5, 0.5, 0.0]]
    # argmax (the first of a tie): 0, 2, 1, 0
    chart = wbtool.plot.confusion_matrix(probs=probs, y_true=[0, 2, 2, 1])
    counts = {(a, p): n for a, p, n in chart.table.data}
    assert counts == {("Class_1", "Class_1"): 1, ("Class_1", "Class_2"): 0,
                      ("Class_1", "Class_3"): 0, ("Class_2", "Class_1"): 1,
                      ("Class_2", "Class_2"): 0, ("Class_2", "Class_3"): 0,
                      ("Class_3", "Class_1"): 0, ("Class_3", "Class_2"): 1,
                      ("Class_3", "Class_3"): 1}
    # string labels: the classes are the labels seen, sorted
    chart = wbtool.plot.confusion_matrix(y_true=["b", "a"], preds=["a", "a"])
    assert chart.table.data == [["Class_1", "Class_1", 1], ["Class_1", "Class_2", 0],
                                ["Class_2", "Class_1", 1], ["Class_2", "Class_2", 0]]


# -- PR and ROC curves --------------------------------------------------------------------

Y_TRUE = [0, 0, 1, 1]
# class 1 scores 0.1, 0.4, 0.35, 0.8; class 0 scores 1 minus those, but for a tie
PROBAS = [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]


def test_pr_curve_of_four_samples() -> None:
    # Class 1, thresholds high to low: 0.8 -> TP 1 FP 0 (P 1, R .5); 0.4 -> TP 1 FP 1
    # (P .5, R .5); 0.35 -> TP 2 FP 1 (P 2/3, R 1); 0.1 -> TP 2 FP 2 (P .5, R 1).
    # Interpolated precision at r = the best precision at recall >= r: 2/3 above 0.5,
    # 1 at and below 0.5. Class 0 (scores 0.9, 0.6 positive; 0.65, 0.2 negative)
    # gives the same points.
    chart = wbtool.plot.pr_curve(Y_TRUE, PROBAS, labels=["neg", "pos"], interp_size=5,
                                 title="PR")
    _, doc, content = logged(chart, "pr")
    assert doc["spec_name"] == "wandb/area-under-curve/v0"
    assert doc["fields"] == {"x": "recall", "y": "precision", "class": "class"}
    assert doc["string_fields"] == {"title": "PR", "x-axis-title": "Recall",
                                    "y-axis-title": "Precision"}
    expected = [(1.0, 0.667), (0.75, 0.667), (0.5, 1.0), (0.25, 1.0), (0.0, 1.0)]
    assert curve(content) == {"neg": expected, "pos": expected}


def test_pr_curve_of_an_imperfect_ranking_and_classes_to_plot() -> None:
    # Class 1 of 3 positives; scores high to low: + - + - +
    # 0.9: TP1 FP0 P1 R1/3; 0.8: TP1 FP1 P.5; 0.7: TP2 FP1 P2/3 R2/3; 0.6: TP2 FP2 P.5;
    # 0.5: TP3 FP2 P.6 R1. Best precision at recall >= r: r in (2/3, 1] -> .6,
    # (1/3, 2/3] -> 2/3, [0, 1/3] -> 1.
    y_true = [1, 0, 1, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    probas = [[1 - s, s] for s in scores]
    chart = wbtool.plot.pr_curve(y_true, probas, classes_to_plot=[1], interp_size=4)
    # grid 1, 2/3, 1/3, 0
    assert chart.table.data == [[1, 0.6, 1.0], [1, 0.667, 0.667], [1, 1.0, 0.333], [1, 1.0, 0.0]]


def test_pr_curve_recall_on_the_grid_counts_as_reached() -> None:
    # 7 of 20 positives score highest (precision 1 up to recall 7/20 = 0.35, a grid
    # point), then all 20 negatives, then the other 13 positives. A grid made as
    # numpy's linspace makes it holds 0.35000000000000003, which recall 7/20 misses.
    y_true = [1] * 20 + [0] * 20
    scores = [0.99 - i / 100 for i in range(7)] + [0.1] * 13 + [0.5] * 20
    probas = [[1 - s, s] for s in scores]
    chart = wbtool.plot.pr_curve(y_true, probas, classes_to_plot=[1])
    by_recall = {r: p for _, p, r in chart.table.data}
    assert by_recall[0.35] == 1.0 and by_recall[0.4] == 0.5 and by_recall[1.0] == 0.5


def test_roc_curve_of_four_samples() -> None:
    # Class 1, thresholds high to low: (FP, TP) = (0,1), (1,1), (1,2), (2,2) of
    # N = 2, P = 2; every point is a corner: (0,0), (0,.5), (.5,.5), (.5,1), (1,1).
    chart = wbtool.plot.roc_curve(Y_TRUE, PROBAS, labels=["neg", "pos"], title="ROC")
    _, doc, content = logged(chart, "roc")
    assert doc["spec_name"] == "wandb/area-under-curve/v0"
    assert doc["fields"] == {"x": "fpr", "y": "tpr", "class": "class"}
    assert doc["string_fields"]["y-axis-title"] == "True positive rate"
    expected = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert curve(content) == {"neg": expected, "pos": expected}


def test_roc_curve_drops_points_on_a_straight_stretch() -> None:
    # Class 1 scores high to low: + + + - - ; (FP, TP) per threshold: (0,1), (0,2),
    # (0,3), (1,3), (2,3): (0,2) and (1,3) lie on straight stretches and go; the first
    # threshold's point stays (as scikit-learn's roc_curve keeps it), after (0,0).
    y_true = [1, 1, 1, 0, 0]
    probas = [[1 - s, s] for s in (0.9, 0.8, 0.7, 0.6, 0.5)]
    chart = wbtool.plot.roc_curve(y_true, probas, classes_to_plot=[1])
    assert chart.table.data == [[1, 0.0, 0.0], [1, 0.0, 0.333], [1, 0.0, 1.0], [1, 1.0, 1.0]]


def test_roc_of_many_samples_keeps_a_row_per_rounded_point() -> None:
    """Points that round to the same (fpr, tpr) make one row: 20,000 samples of
    distinct scores make at most 2001 rows a class, not one per threshold."""
    import random

    rng = random.Random(0)
    y_true = [rng.randrange(2) for _ in range(20_000)]
    scores = [rng.random() for _ in y_true]
    chart = wbtool.plot.roc_curve(y_true, [[1 - s, s] for s in scores], classes_to_plot=[1])
    rows = chart.table.data
    assert 1000 < len(rows) <= 2001
    assert rows[0] == [1, 0.0, 0.0] and rows[-1] == [1, 1.0, 1.0]
    points = [(fpr, tpr) for _, fpr, tpr in rows]
    assert len(set(points)) == len(points)
    assert points == sorted(points)  # the curve never goes back


def test_string_labels_take_the_columns_in_sorted_order() -> None:
    chart = wbtool.plot.roc_curve(["dog", "cat"], [[0.8, 0.2], [0.3, 0.7]])
    # "cat" is column 0: it scores the cat 0.3, the dog 0.8 -> the dog ranks first
    assert chart.table.data == [["cat", 0.0, 0.0], ["cat", 1.0, 0.0], ["cat", 1.0, 1.0],
                                ["dog", 0.0, 0.0], ["dog", 1.0, 0.0], ["dog", 1.0, 1.0]]


# -- what runs show shows -----------------------------------------------------------------

def test_runs_show_tells_charts_in_words_and_draws_their_lines(cli: Any) -> None:
    table = wbtool.Table(columns=["x", "y"], data=[[2, 4.0], [0, 0.0], [1, 1.0]])
    run = start()
    run.log({"sq": wbtool.plot.line(table, "x", "y", title="Squares"),
             "cm": wbtool.plot.confusion_matrix(y_true=[0, 1], preds=[0, 0]),
             "pr": wbtool.plot.pr_curve(Y_TRUE, PROBAS, labels=["neg", "pos"], interp_size=5),
             "series": wbtool.plot.line_series([0, 1], [[5, 6]], keys=["a"])})
    run.finish()
    shown = cli("runs", "show", run.id, check=True).out
    assert 'sq: line chart "Squares" of 3 rows x 2 columns: media/table/sq_0_' in shown
    assert "cm: confusion matrix chart of 4 rows x 3 columns: media/table/cm_0_" in shown
    assert "pr: area under curve chart (Precision against Recall) of 10 rows" in shown
    lines = {ln.split()[0] + (ln.split()[1] if ln.split()[0].endswith(":") else ""): ln
             for ln in shown.split("logged charts:\n")[1].splitlines()}
    assert "▁▃█" in lines["sq"] and "min 0" in lines["sq"] and "last 4" in lines["sq"]
    assert "███▁▁" in lines["pr:neg"] and "last 0.667" in lines["pr:neg"]
    assert "(5 points)" in lines["pr:pos"]
    assert "series:a" in lines and "cm" not in lines
    doc = json.loads(cli("runs", "show", run.id, "--json", check=True).out)
    charts = doc["result"]["custom_charts"]
    assert charts["sq"][""]["points"] == [0.0, 1.0, 4.0]


def test_runs_show_skips_chart_tables_of_the_wrong_shape(cli: Any) -> None:
    """A chart's table file edited by hand (columns or rows not lists) is not drawn;
    runs show still shows the run, without a traceback."""
    table = wbtool.Table(columns=["x", "y"], data=[[0, 1.0], [1, 2.0]])
    run = start()
    run.log({"a": wbtool.plot.line(table, "x", "y"), "b": wbtool.plot.line(table, "x", "y"),
             "c": wbtool.plot.line(table, "x", "y"), "d": wbtool.plot.line(table, "x", "y")})
    run.finish()
    folder = Path(run._folder.path)
    row = next(iter_rows(Path(run._folder.history)))
    for key, content in (("a", {"columns": 5, "data": []}),
                         ("b", {"columns": ["x", "y"], "data": 7}),
                         ("c", {"columns": "xy", "data": [[1, 2]]})):
        (folder / row[key]["table"]["path"]).write_text(json.dumps(content))
    res = cli("runs", "show", run.id)
    assert res.code == 0 and "Traceback" not in res.err, res.err
    charts = res.out.split("logged charts:\n")[1].splitlines()
    assert [ln.split()[0] for ln in charts] == ["d"]
    doc = json.loads(cli("runs", "show", run.id, "--json", check=True).out)
    assert list(doc["result"]["custom_charts"]) == ["d"]


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("call, words", [
    (lambda t: wbtool.plot.line(t, "epoch", "nope"), "y: the table has no column 'nope'"),
    (lambda t: wbtool.plot.line(t, "a", "b", stroke="c"), "stroke: the table has no column"),
    (lambda t: wbtool.plot.scatter(t, "nope", "b"), "x: the table has no column 'nope'"),
    (lambda t: wbtool.plot.bar(t, "a", "zz"), "value: the table has no column 'zz'"),
    (lambda t: wbtool.plot.histogram(t, "zz"), "value: the table has no column 'zz'"),
    (lambda t: wbtool.plot.line([[1, 2]], "a", "b"), "table must be a wbtool.Table"),
    (lambda t: wbtool.plot.line_series([1, 2], [[1, 2], [1]]), "xs has 2 values and ys[1] has 1"),
    (lambda t: wbtool.plot.line_series([[1], [2]], [[1]]), "xs has 2 series and ys has 1"),
    (lambda t: wbtool.plot.line_series([1], [[1]], keys=["a", "b"]), "keys has 2 names"),
    (lambda t: wbtool.plot.confusion_matrix(y_true=[0, 1], preds=[0]),
     "preds has 1 values and y_true has 2"),
    (lambda t: wbtool.plot.confusion_matrix(probs=[[1, 0]], y_true=[0], preds=[0]),
     "give probs or preds, not both"),
    (lambda t: wbtool.plot.confusion_matrix(y_true=[0]), "give probs"),
    (lambda t: wbtool.plot.confusion_matrix(probs=[0.1, 0.9], y_true=[1]),
     "probs must be 2-D"),
    (lambda t: wbtool.plot.confusion_matrix(y_true=[0, 3], preds=[0, 1],
                                            class_names=["a", "b"]),
     "y_true holds class 3, outside 0..1"),
    (lambda t: wbtool.plot.confusion_matrix(y_true=[0, 1], preds=[0, -1],
                                            class_names=["a", "b"]),
     "preds holds class -1, outside 0..1"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [[0.5, 0.5]]), "y_true has 2 values and y_probas "
     "has 1"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [0.2, 0.8]), "y_probas must be 2-D"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [[0.2, 0.8], [0.1]]), "y_probas must be 2-D"),
    (lambda t: wbtool.plot.roc_curve([0, 2], [[0.2, 0.8], [0.1, 0.9]]),
     "y_true holds class 2, outside 0..1"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [[0.2, 0.8], [0.1, 0.9]], labels=["a"]),
     "labels has 1 names; y_true holds class 1"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [[0.2, 0.8], [0.1, 0.9]], classes_to_plot=[5]),
     "classes_to_plot names none of the classes"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [[0.2, 0.8], [0.1, 0.9]], interp_size=1),
     "interp_size must be an int of at least 2"),
    (lambda t: wbtool.plot.pr_curve([0, 1], [[0.2, float("nan")], [0.1, 0.9]]),
     "y_probas must hold finite numbers"),
    (lambda t: wbtool.plot.roc_curve(["a", "b", "c"], [[0.2, 0.8], [0.1, 0.9], [0, 1]]),
     "y_true holds 3 classes and y_probas has 2 columns"),
    (lambda t: wbtool.plot.roc_curve([1, 1], [[0.2, 0.8], [0.1, 0.9]]),
     "y_true holds only class 1"),
    (lambda t: wbtool.plot.pr_curve(None, [[0.2, 0.8]]), "y_true is required"),
    (lambda t: wbtool.plot.pr_curve([0.5], [[0.2, 0.8]]), "y_true must hold class labels"),
])
def test_bad_input_is_refused_naming_the_argument(call: Any, words: str) -> None:
    table = wbtool.Table(columns=["epoch", "a", "b"], data=[[0, 1, 2]])
    with pytest.raises(ValueError) as err:
        call(table)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_readme_chart_example_runs() -> None:
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### Charts: wbtool.plot"):]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[:1]
    with start() as run:
        exec(block, {"wbtool": wbtool, "run": run, "y_test": Y_TRUE, "y_probas": PROBAS,
                     "labels": ["neg", "pos"], "preds": [0, 1, 1, 1],
                     "table": wbtool.Table(columns=["epoch", "loss"], data=[[0, 1.0]])})
    (row,) = list(iter_rows(Path(run._folder.history)))
    assert {row[k]["_type"] for k in ("pr", "roc", "cm", "loss")} == {"custom-chart"}
    assert row["cm"]["table"]["nrows"] == 4
