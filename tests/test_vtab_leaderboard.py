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


def test_group_means_get_suite_bootstrap_intervals_and_tie_marks(tmp_path):
    from test_leaderboard import planted, write_record

    from evalbench.leaderboard import build_leaderboard
    from evalbench.results import iter_results
    from evalbench.scoring import suite_interval

    root = tmp_path / "results"
    for task, group in GROUPS.items():
        y, a = planted(n=200, wrong=20)
        write_record(root, "a", task, y, a, interval=(86.0, 94.0), group=group, suites=("vtab",))
        b = planted(n=200, wrong=20, differ=40 if group == "structured" else 1)[1]
        write_record(root, "b", task, y, b, interval=(60.0, 80.0) if group == "structured" else (85.0, 94.0),
                     group=group, suites=("vtab",))
    records = iter_results([root])
    text = build_leaderboard(records, suite_tasks={"vtab": GROUPS}).markdown(["results"])

    def half(model, tasks):
        ci = suite_interval([r.load_predictions() for r in records if r.model.name == model and r.task.name in tasks])
        return f"{(ci.high - ci.low) / 2:.2f}"

    nat, struct = ["n1", "n2"], ["t1", "t2", "t3"]
    assert "| n (test) | 200 | 200 |  | 200 |  | 200 | 200 | 200 |  |  |" in text
    assert (f"| a | **90.00 ± 4.00** | **90.00 ± 4.00** | **90.00 ± {half('a', nat)}** | **90.00 ± 4.00** | **90.00 ± 4.00** "
            f"| **90.00 ± 4.00** | **90.00 ± 4.00** | **90.00 ± 4.00** | **90.00 ± {half('a', struct)}** "
            f"| **90.00 ± {half('a', GROUPS)}** |") in text
    # b: 1 item of 200 apart on natural and specialized tasks (tied), 40 apart on structured ones (separable)
    assert (f"| b | **89.50 ± 4.50** | **89.50 ± 4.50** | **89.50 ± {half('b', nat)}** | **89.50 ± 4.50** "
            f"| **89.50 ± 4.50** | 70.00 ± 10.00 | 70.00 ± 10.00 | 70.00 ± 10.00 | 70.00 ± {half('b', struct)} "
            f"| 79.75 ± {half('b', GROUPS)} |") in text
