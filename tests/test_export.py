"""The table a paper prints: `kdbench leaderboard SUITE --format markdown|latex|csv` pivots the methods view
(methods × teacher→student pairs), mean ± half CI in percent, the best of each column in bold."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.results.export import arrow_markdown, latex_escape, paper_table, render
from kdbench.results.views.methods import FIELDS


def _row(teacher, student, method, mean, lo=None, hi=None, metric="acc", params="{}"):
    chain = student if teacher is None else f"{teacher} → {student}"
    return {"dataset": "digits", "teacher": teacher, "student": student, "chain": chain, "method": method,
            "method_params": params, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi}


def _table(rows) -> pa.Table:
    names = {f.name for f in FIELDS}
    full = [{**{n: None for n in names}, **r} for r in rows]
    return pa.Table.from_pylist(full, schema=pa.schema(FIELDS))


ROWS = [_row(None, "s", "none", 0.90, 0.88, 0.92), _row("t", "s", "kd", 0.9312, 0.9212, 0.9412),
        _row("t", "s", "crd", 0.9350), _row("t2", "s", "kd", 0.91, 0.90, 0.92), _row("t2", "s", "crd", None)]


def test_the_paper_table_has_a_row_per_method_and_a_column_per_pair_with_the_best_in_bold():
    t = paper_table("demo", _table(ROWS))
    assert t.columns == ["t → s", "t2 → s"] and t.rows == ["student alone", "kd", "crd"]
    assert t.best == {("crd", "t → s"), ("kd", "t2 → s")}
    md = render("demo", _table(ROWS), "markdown").splitlines()
    assert md[0] == "| method | t → s | t2 → s |"
    assert md[2] == "| student alone | 90.00 ± 2.00 | 90.00 ± 2.00 |"  # (0.92 − 0.88) / 2 in points
    assert md[3] == "| kd | 93.12 ± 1.00 | **91.00 ± 1.00** |"
    assert md[4] == "| crd | **93.50** | — |"  # one seed: no interval; no result: a dash


def test_lower_is_better_metrics_bold_the_smallest_and_keep_their_units():
    rows = [_row("t", "s", "regkd", 0.41, metric="rmse"), _row("t", "s", "none2", 0.45, metric="rmse")]
    t = paper_table("reg", _table(rows))
    assert t.best == {("regkd", "t → s")}
    assert render("reg", _table(rows), "markdown").splitlines()[2:4] == ["| regkd | **0.4100** |",
                                                                          "| none2 | 0.4500 |"]


def test_latex_is_escaped_and_bold_and_csv_holds_numbers():
    rows = [_row("t_big", "s", "kd", 0.9312, 0.9212, 0.9412, params='{"temperature": 4}'),
            _row("t_big", "s", "kd", 0.95, 0.94, 0.96, params='{"temperature": 8}')]
    tex = render("demo_1", _table(rows), "latex")
    assert r"t\_big $\to$ s" in tex and r"kd(temperature=8) & \textbf{95.00 $\pm$ 1.00} \\" in tex
    assert r"demo\_1: test accuracy (\%)" in tex and tex.count(r"\begin{tabular}{lr}") == 1
    parsed = list(csv.reader(io.StringIO(render("demo", _table(rows), "csv"))))
    assert parsed[0] == ["method", "t_big → s mean", "t_big → s ci95_low", "t_big → s ci95_high"]
    assert parsed[1:] == [["kd(temperature=4)", "93.12", "92.12", "94.12"],
                          ["kd(temperature=8)", "95.00", "94.00", "96.00"]]
    assert latex_escape("a&b%c_d{e}") == r"a\&b\%c\_d\{e\}"


def test_a_query_answer_renders_as_markdown():
    table = pa.table({"method": ["kd", "a|b"], "acc": [0.95123456, None]})
    assert arrow_markdown(table).splitlines() == ["| method | acc |", "| --- | --- |", "| kd | 0.9512 |",
                                                  "| a\\|b |  |"]


def test_an_unknown_format_is_refused_before_reading_anything(tmp_path):
    result = CliRunner().invoke(app, ["leaderboard", "x", "--store", str(tmp_path / "none"), "--format", "xml"])
    assert result.exit_code == 2 and "unknown --format 'xml'" in result.output
    with pytest.raises(ValueError, match="unknown format"):
        render("x", _table(ROWS), "xml")


def test_an_interval_clipped_to_the_metric_s_range_shows_its_ends():
    from kdbench.results.views.cells import cell

    rows = [{"kind": "student", "status": "ok", "seed": s, "task": "classification", "score": a}
            for s, a in enumerate([1.0, 0.98, 1.0])]
    c = cell(rows, None)
    assert c["ci_high"] == 1.0 and c["ci_low"] < c["mean"] < 1.0  # the t-interval passes 100%: clipped
    t = paper_table("clip", _table([_row("t", "s", "kd", c["mean"], c["ci_low"], c["ci_high"])]))
    low = 100 * c["ci_low"]
    assert render("clip", _table([_row("t", "s", "kd", c["mean"], c["ci_low"], c["ci_high"])]),
                  "markdown").splitlines()[2] == f"| kd | **99.33 [{low:.2f}, 100.00]** |"
    assert t.best == {("kd", "t → s")}
