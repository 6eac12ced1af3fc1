"""Results to markdown leaderboards: a pure function of the records it is given."""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, Iterable, Optional, Sequence

import pandas as pd

from . import __version__
from .results import ResultRecord, as_record


def _fingerprint_text(record: ResultRecord) -> str:
    return json.dumps(record.model.fingerprint, sort_keys=True, default=str)


def _model_label(record: ResultRecord, fingerprints_per_name: dict[str, set]) -> str:
    name = record.model.name
    fp = _fingerprint_text(record)
    if len(fingerprints_per_name[name]) > 1:  # two different models share a name: tell them apart
        return f"{name} ({hashlib.sha256(fp.encode()).hexdigest()[:8]})"
    return name


def _table_key(r: ResultRecord) -> tuple[str, str, str, str]:
    """Protocol id and version, grouped suite and split variant: results that never share a table."""
    suite = (r.task.suites or ("",))[0] if r.task.group else ""
    return r.protocol.id, r.protocol.version, suite, r.task.split_variant


def _table_name(pid: str, pver: str, suite: str, variant: str) -> str:
    name = f"{pid} (protocol v{pver})"
    if suite:
        name = f"{suite}: {name}"
    return name + (f", split variant {variant}" if variant else "")


def group_columns(df: pd.DataFrame, col_group: dict[str, str], expected: Sequence[str] = ()) -> pd.DataFrame:
    """Order task columns by group and add `<group> mean` columns and the overall `mean`.

    Args:
        df: rows are models, columns are tasks.
        col_group: task column -> group name (groups appear in first-seen order).
        expected: task columns the suite defines; absent ones become empty columns so the means
            of models that lack them are flagged partial.
    Returns:
        The table with columns [group tasks..., "<group> mean", ...] + ["mean", "complete"];
        `mean` is the unweighted mean over all tasks (VTAB's headline), not a mean of group means.
    """
    for col in expected:
        if col not in df.columns:
            df[col] = float("nan")
    task_cols = list(df.columns)
    groups = list(dict.fromkeys(col_group[c] for c in task_cols))
    ordered, tasks = [], []
    for g in groups:
        cols = sorted(c for c in task_cols if col_group[c] == g)
        tasks += cols
        df[f"{g} mean"] = df[cols].mean(axis=1, skipna=True)
        ordered += cols + [f"{g} mean"]
    df = df[ordered].copy()
    df["mean"] = df[tasks].mean(axis=1, skipna=True)
    df["complete"] = df[tasks].notna().all(axis=1)
    df.attrs["groups"] = {g: sorted(c for c in tasks if col_group[c] == g) for g in groups}
    return df


def leaderboard_tables(records: Iterable[ResultRecord | dict[str, Any]], metric: str = "top1",
                       suite_tasks: Optional[dict[str, dict[str, str]]] = None) -> dict[str, pd.DataFrame]:
    """One table per protocol (id and version): rows are models, columns are tasks, plus `mean`.

    A column is a (task, task version) pair, so results of different task or protocol versions
    never share a column. `mean` is the unweighted mean over the columns a model has; a model
    missing some columns gets a partial mean, flagged in the `complete` column.

    Results whose tasks carry a group (VTAB: natural, specialized, structured) get their own table
    per suite and split variant, with columns ordered by group and a mean per group; `suite_tasks`
    (suite -> {task: group}) names every task a suite defines, so missing ones make a mean partial.
    """
    records = [r for r in map(as_record, records) if r.metric(metric) is not None]
    fingerprints: dict[str, set] = defaultdict(set)
    for r in records:
        fingerprints[r.model.name].add(_fingerprint_text(r))
    by_protocol: dict[tuple[str, str, str, str], list] = defaultdict(list)
    for r in records:
        by_protocol[_table_key(r)].append(r)
    tables = {}
    for (pid, pver, suite, variant), recs in sorted(by_protocol.items()):
        versions = defaultdict(set)
        for r in recs:
            versions[r.task.name].add(r.task.version)
        cells: dict[str, dict[str, float]] = defaultdict(dict)
        col_group: dict[str, str] = {}
        for r in recs:
            t = r.task.name
            col = t if len(versions[t]) == 1 else f"{t} (v{r.task.version})"
            cells[_model_label(r, fingerprints)][col] = r.metric(metric)
            col_group[col] = r.task.group or ""
        df = pd.DataFrame.from_dict(cells, orient="index")
        if suite:
            expected = {t: g for t, g in (suite_tasks or {}).get(suite, {}).items() if t not in versions}
            col_group.update(expected)
            df = group_columns(df, col_group, list(expected))
        else:
            df = df[sorted(df.columns)]
            df["mean"] = df.mean(axis=1, skipna=True)
            df["complete"] = df.drop(columns="mean").notna().all(axis=1)
        df = df.sort_values(["complete", "mean"], ascending=[False, False], kind="stable")
        df.index.name = "model"
        tables[_table_name(pid, pver, suite, variant)] = df
    return tables


def format_metric(v: Any, interval: Optional[Sequence[float]] = None) -> str:
    """Two decimals, `± half-width` of an interval when given; a dash for a missing (None or NaN) value."""
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if interval is None or (isinstance(interval, float) and pd.isna(interval)):
        return f"{v:.2f}"
    return f"{v:.2f} ± {(interval[1] - interval[0]) / 2:.2f}"


def render_markdown(records: Sequence[ResultRecord | dict[str, Any]], sources: Sequence[str], metric: str = "top1", title: str = "evalbench leaderboard",
                    suite_tasks: Optional[dict[str, dict[str, str]]] = None) -> str:
    """The leaderboard as markdown: a generated-file header, then one table per protocol (and grouped suite)."""
    tables = leaderboard_tables(records, metric, suite_tasks)
    lines = [
        f"<!-- Generated by `evalbench leaderboard` (evalbench {__version__}); do not edit by hand. -->",
        f"# {title}",
        "",
        f"Generated from {len(records)} result records in {', '.join(f'`{s}`' for s in sources)}. "
        f"Metric: {metric} accuracy (%) on each task's test split; models sorted by the mean over tasks.",
        "",
    ]
    if not tables:
        lines.append("No results found.")
    for name, df in tables.items():
        lines += [f"## {name}", ""]
        for g, cols in df.attrs.get("groups", {}).items():
            lines.append(f"- **{g}** ({len(cols)} tasks): {', '.join(cols)}")
        if df.attrs.get("groups"):
            lines += ["- **mean**: unweighted mean over all tasks; a mean marked (partial) lacks some tasks", ""]
        cols = [c for c in df.columns if c != "complete"]
        lines.append("| model | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for model, row in df.iterrows():
            vals = [format_metric(row[c]) for c in cols]
            for g, tasks in df.attrs.get("groups", {}).items():
                if row[tasks].isna().any() and row[tasks].notna().any():
                    vals[cols.index(f"{g} mean")] += " (partial)"
            if not row["complete"]:
                vals[-1] += " (partial)"
            lines.append(f"| {model} | " + " | ".join(vals) + " |")
        lines.append("")
    return "\n".join(lines)


def group_summary(rows: Iterable[dict[str, Any]], task_groups: dict[str, str], metric: str = "top1") -> list[str]:
    """One line per protocol: the mean over a grouped suite's tasks and each group's mean, partial when tasks lack.

    Args:
        rows: dicts with task, protocol and the metric (e.g. the rows `evaluate` returns).
        task_groups: every task of the suite -> its group (what a complete run covers).
    """
    by_protocol: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["task"] in task_groups and r.get(metric) is not None and r[metric] == r[metric]:
            by_protocol[r["protocol"]][r["task"]] = float(r[metric])
    lines = []
    groups = list(dict.fromkeys(task_groups.values()))
    for pid, scores in sorted(by_protocol.items()):
        parts = [f"{g} {_partial_mean(scores, [t for t, tg in task_groups.items() if tg == g])}" for g in groups]
        lines.append(f"{pid}: mean {_partial_mean(scores, list(task_groups))}; " + "; ".join(parts))
    return lines


def _partial_mean(scores: dict[str, float], tasks: list[str]) -> str:
    """The mean of `tasks`' scores, marked partial when some lack; a dash when none has one."""
    got = [scores[t] for t in tasks if t in scores]
    if not got:
        return "–"
    return f"{sum(got) / len(got):.2f}" + ("" if len(got) == len(tasks) else f" (partial: {len(got)} of {len(tasks)} tasks)")


def suite_task_groups(tasks: Iterable[Any]) -> dict[str, dict[str, str]]:
    """suite -> {task: group} for every suite whose tasks carry groups (from TaskSpec-like objects)."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for t in tasks:
        if t.group:
            for suite in t.suites:
                out[suite][t.name] = t.group
    return dict(out)
