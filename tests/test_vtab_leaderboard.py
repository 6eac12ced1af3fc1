"""Grouped leaderboards (VTAB): task columns by group, group means, overall mean, split variants apart."""
from __future__ import annotations

import math

from evalbench.leaderboard import group_summary, leaderboard_tables, render_markdown

GROUPS = {"n1": "natural", "n2": "natural", "s1": "specialized", "t1": "structured", "t2": "structured", "t3": "structured"}


def rec(model, task, top1, variant="vtab-1k-official"):
    return {"schema_version": 1, "model": {"name": model, "fingerprint": {"w": model}},
            "task": {"name": task, "version": "1", "group": GROUPS[task], "suites": ["vtab"],
                     "dataset": {"split_variant": variant}},
            "protocol": {"id": "linear", "name": "linear", "version": "1"}, "metrics": {"top1": top1}}


def test_group_means_and_the_overall_mean_over_all_tasks():
    scores = {"n1": 90, "n2": 70, "s1": 60, "t1": 30, "t2": 40, "t3": 50}
    tables = leaderboard_tables([rec("a", t, v) for t, v in scores.items()])
    df = tables["vtab: linear (protocol v1), split variant vtab-1k-official"]
    assert list(df.columns) == ["n1", "n2", "natural mean", "s1", "specialized mean", "t1", "t2", "t3",
                                "structured mean", "mean", "complete"]
    row = df.loc["a"]
    assert (row["natural mean"], row["specialized mean"], row["structured mean"]) == (80, 60, 40)
    assert math.isclose(row["mean"], 340 / 6)  # over the 6 tasks, not the mean of the 3 group means (60)
    assert bool(row["complete"])


def test_variants_never_share_a_table_and_missing_tasks_make_means_partial():
    records = [rec("a", "n1", 90), rec("a", "s1", 50), rec("b", "n1", 80, variant="source-stratified")]
    tables = leaderboard_tables(records, suite_tasks={"vtab": GROUPS})
    assert set(tables) == {"vtab: linear (protocol v1), split variant vtab-1k-official",
                           "vtab: linear (protocol v1), split variant source-stratified"}
    official = tables["vtab: linear (protocol v1), split variant vtab-1k-official"]
    assert "b" not in official.index and len([c for c in official.columns if c in GROUPS]) == 6
    assert official.loc["a", "mean"] == 70 and not official.loc["a", "complete"]
    text = render_markdown(records, ["results"], suite_tasks={"vtab": GROUPS})
    assert "## vtab: linear (protocol v1), split variant source-stratified" in text
    assert "- **natural** (2 tasks): n1, n2" in text
    assert "| a | 90.00 | – | 90.00 (partial) | 50.00 | 50.00 | – | – | – | – | 70.00 (partial) |" in text


def test_ungrouped_tasks_keep_their_plain_table():
    plain = {"schema_version": 1, "model": {"name": "a", "fingerprint": {}}, "task": {"name": "digits", "version": "1"},
             "protocol": {"id": "linear", "name": "linear", "version": "1"}, "metrics": {"top1": 90}}
    assert set(leaderboard_tables([plain, rec("a", "n1", 80)])) == {
        "linear (protocol v1)", "vtab: linear (protocol v1), split variant vtab-1k-official"}


def test_run_summary_lines():
    rows = [{"task": "n1", "protocol": "linear", "top1": 90.0}, {"task": "n2", "protocol": "linear", "top1": 70.0},
            {"task": "s1", "protocol": "linear", "top1": 60.0}]
    assert group_summary(rows, GROUPS) == [
        "linear: mean 73.33 (partial: 3 of 6 tasks); natural 80.00; specialized 60.00; structured –"]
