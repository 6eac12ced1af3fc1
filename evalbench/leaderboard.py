"""Results to leaderboards (markdown, a tidy frame): values with intervals and ties with the best, a pure function of the records."""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import pandas as pd

from . import __version__
from .errors import EvalbenchError
from .leaderboard_cells import ALPHA, Board, Cell, StoredPredictions, annotate
from .results import ResultRecord, as_record, read_result

DAGGER = "†"
#: The default `metric`: each column shows its task's own headline metric (task YAML `metric:`, top1 unless set).
HEADLINE = "headline"
CONVERGENCE_NOTE = f"{DAGGER} final fit stopped before its tolerance: see the record's details.final_fit"
FRAME_COLUMNS = ["table", "protocol", "protocol_version", "model", "task", "kind", "metric", "value", "ci_low", "ci_high",
                 "n_test", "converged", "complete", "is_best", "separable_from_best"]


# ---------------------------------------------------------------------------- reading result directories


def load_records(dirs: Iterable[Path | str]) -> tuple[list[ResultRecord], list[str]]:
    """Every result record under the given directories (sorted by path) and the JSON files skipped, with why.

    Raises:
        EvalbenchError: a directory does not exist, or a record was written by a newer evalbench.
    """
    records, skipped = [], []
    for d in map(Path, dirs):
        if not d.exists():
            raise EvalbenchError(f"results directory {d} does not exist; run `evalbench run` first or pass the right path")
        for path in sorted(d.rglob("*.json")):
            rec = ResultRecord.read(path)
            if rec is None:
                skipped.append(f"{path} ({_why_not_a_record(path)})")
            else:
                records.append(rec)
    return records, skipped


def _why_not_a_record(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at line {exc.lineno}"
    if not isinstance(data, dict) or "schema_version" not in data:
        return "not an evalbench result record: no schema_version"
    try:
        ResultRecord.from_dict(data, path)
    except ValueError as exc:
        return f"not a readable record: {exc}"
    return "not a readable record"


# ---------------------------------------------------------------------------- tables of values


def _fingerprint_text(record: ResultRecord) -> str:
    return json.dumps(record.model.fingerprint, sort_keys=True, default=str)


def _model_labeller(records: Sequence[ResultRecord]) -> Callable[[ResultRecord], str]:
    """The row label of a record: its model name, with a fingerprint digest when two models share the name."""
    fingerprints: dict[str, set] = defaultdict(set)
    for r in records:
        fingerprints[r.model.name].add(_fingerprint_text(r))

    def label(record: ResultRecord) -> str:
        if len(fingerprints[record.model.name]) > 1:
            return f"{record.model.name} ({hashlib.sha256(_fingerprint_text(record).encode()).hexdigest()[:8]})"
        return record.model.name
    return label


def _table_key(r: ResultRecord) -> tuple[str, str, str, str]:
    """Protocol id and version, suite and split variant: results that never share a table (a task's first
    suite names its table, so the transfer or ImageNet tasks are not averaged with the quick suite's)."""
    suite = (r.task.suites or ("",))[0]
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


def metric_of(record: ResultRecord, metric: str) -> str:
    """The metric a record is shown in: its task's headline metric under HEADLINE, else `metric`."""
    return record.task.headline if metric == HEADLINE else metric


def _column_order(col: str) -> tuple:
    """A task's column, then its extra test sets (`task@set`) right beside it."""
    task, _, test_set = col.partition("@")
    return task, bool(test_set), test_set


@dataclass(frozen=True)
class TaskFacts:
    """What a leaderboard needs to know of a registered task without results: its metric and protocol ids."""

    metric: str = "top1"
    protocols: tuple[str, ...] = ()


def task_facts(tasks: Iterable[Any]) -> dict[str, TaskFacts]:
    """task name -> TaskFacts, from TaskSpec-like objects."""
    return {t.name: TaskFacts(t.metric, tuple(e.id for e in t.protocols)) for t in tasks}


def _expected_tasks(suite: str, pid: str, suite_tasks: Optional[dict[str, dict[str, str]]],
                    facts: Optional[dict[str, TaskFacts]]) -> dict[str, str]:
    """The suite's tasks (-> group) a complete table of protocol `pid` holds: those whose YAML runs it
    (every task when no facts are given; none when no task of the suite lists it)."""
    listed = (suite_tasks or {}).get(suite, {}) if suite else {}
    if facts is None:
        return dict(listed)
    return {t: g for t, g in listed.items() if t in facts and pid in facts[t].protocols}


def _board(key: tuple[str, str, str, str], recs: list[ResultRecord], metric: str, label: Callable,
           suite_tasks: Optional[dict[str, dict[str, str]]], facts: Optional[dict[str, TaskFacts]] = None) -> Board:
    pid, pver, suite, variant = key
    versions = defaultdict(set)
    for r in recs:
        versions[r.task.name].add(r.task.version)
    values: dict[str, dict[str, float]] = defaultdict(dict)
    at: dict[tuple[str, str], ResultRecord] = {}
    col_group: dict[str, str] = {}
    col_metric: dict[str, str] = {}
    test_set_cols: set[str] = set()
    for r in recs:
        t = r.task.name
        col = t if len(versions[t]) == 1 else f"{t} (v{r.task.version})"
        if r.task.test_set:
            col = f"{col}@{r.task.test_set}"
            test_set_cols.add(col)
        values[label(r)][col] = r.metric(metric_of(r, metric))
        at[(label(r), col)] = r
        col_group[col] = r.task.group or ""
        col_metric[col] = metric_of(r, metric)
    df = pd.DataFrame.from_dict(values, orient="index")
    # extra test sets (ImageNet-R beside ImageNet val) are shown, never averaged into a mean
    beside = df[sorted(test_set_cols)]
    df = df.drop(columns=sorted(test_set_cols))
    expected = {t: g for t, g in _expected_tasks(suite, pid, suite_tasks, facts).items() if t not in versions}
    for t in expected:  # an empty column still names its task's metric
        col_metric[t] = (facts or {}).get(t, TaskFacts()).metric if metric == HEADLINE else metric
    if any(col_group.get(c) for c in df.columns) or any(expected.values()):
        col_group.update(expected)
        df = group_columns(df, col_group, list(expected))
        groups = df.attrs["groups"]
        means = {f"{g} mean": cols for g, cols in groups.items()}
        means["mean"] = [c for cols in groups.values() for c in cols]
    else:
        for col in expected:  # a suite task without results: an empty column, and the mean is partial
            df[col] = float("nan")
        df = df[sorted(df.columns)]
        means = {"mean": list(df.columns)}
        df["mean"] = df.mean(axis=1, skipna=True)
        df["complete"] = df.drop(columns="mean").notna().all(axis=1)
    df = _place_beside(df, beside)
    df = df.sort_values(["complete", "mean"], ascending=[False, False], kind="stable")
    df.index.name = "model"
    return Board(_table_name(pid, pver, suite, variant), pid, pver, df, at, means, metrics=col_metric)


def _place_beside(df: pd.DataFrame, beside: pd.DataFrame) -> pd.DataFrame:
    """`df` with each extra test-set column inserted right after its task's column."""
    if not len(beside.columns):
        return df
    df = df.join(beside, how="outer")
    order: list[str] = []
    for col in [c for c in df.columns if c not in beside.columns]:
        order.append(col)
        order += sorted((b for b in beside.columns if b.partition("@")[0] == col), key=_column_order)
    order += [b for b in beside.columns if b not in order]  # a test set whose task column is absent
    return df[order]


# ---------------------------------------------------------------------------- the leaderboard


@dataclass
class Leaderboard:
    """Every table of a set of records, annotated; render it as markdown or as a tidy frame."""

    boards: list[Board]
    metric: str
    n_records: int
    warnings: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """One row per shown number: the tidy table of `leaderboard_frame`."""
        rows = []
        for b in self.boards:
            for model in b.values.index:
                for col in b.columns:
                    c = b.cells.get((model, col))
                    if c is not None:
                        rows.append((b.name, b.protocol, b.protocol_version, model, col, c.kind,
                                     b.metrics.get(col, self.metric), c.value,
                                     c.low, c.high, c.n_test, c.converged, c.complete, c.best if c.separable is not None else None,
                                     c.separable))
        df = pd.DataFrame(rows, columns=FRAME_COLUMNS)
        return df.astype({"value": "float64", "ci_low": "float64", "ci_high": "float64", "n_test": "Int64",
                          "converged": "boolean", "complete": "bool", "is_best": "boolean", "separable_from_best": "boolean"})

    def markdown(self, sources: Sequence[str], title: str = "evalbench leaderboard", ci: bool = True,
                 images: Sequence[tuple[str, str]] = ()) -> str:
        """The markdown file: a generated-file header and legend, one table per protocol (and grouped suite), then images.

        Args:
            sources: the results directories, named in the header.
            ci: show `value ± half-width` (False: the values alone).
            images: (caption, relative path) of plots to link at the end.
        """
        lines = [
            f"<!-- Generated by `evalbench leaderboard` (evalbench {__version__}); do not edit by hand. -->",
            f"# {title}",
            "",
            f"Generated from {self.n_records} result records in {', '.join(f'`{s}`' for s in sources)}. "
            f"Metric: {self._metric_text()}; models sorted by the mean over tasks.",
            "",
            *self._legend(ci),
            "",
        ]
        if not self.boards:
            lines.append("No results found.")
        for b in self.boards:
            lines += _board_lines(b, ci)
        if images:
            lines += ["## Plots", ""]
            for caption, path in images:
                lines += [f"![{caption}]({path})", ""]
        return "\n".join(lines)

    def _metric_text(self) -> str:
        if self.metric != HEADLINE:
            return f"{self.metric} (%) on each task's test split"
        shown = {m for b in self.boards for m in b.metrics.values()}
        if shown <= {"top1"}:
            return "top1 accuracy (%) on each task's test split"
        return ("each task's headline metric (%), named in each table's `metric` row: top1 accuracy, mean_per_class "
                "(mean per-class accuracy), map11 (11-point mAP) on the task's test split")

    def _legend(self, ci: bool) -> list[str]:
        lines = []
        if ci:
            asym = any(c.low is not None and abs((c.high - c.value) - (c.value - c.low)) > 0.01
                       for b in self.boards for c in b.cells.values())
            shape = ("Some intervals are asymmetric around the value (bootstrap percentiles): ± is half the interval's "
                     "width, (high − low)/2, not the distance to either bound; `--format csv` has the exact bounds."
                     if asym else "± is half the interval's width, (high − low)/2.")
            lines.append("- `86.10 ± 1.52`: the value and its 95% interval. Task cells: the interval stored in the record "
                         "(bootstrap over test items; few-shot and episodic: the protocol's own over seeds or episodes). "
                         f"Means: bootstrap within each task's test items, then the mean. {shape}")
        lines += [
            "- **bold**: the best model in a column and every model not separable from it on the same test items: exact "
            f"McNemar p ≥ {ALPHA} or a paired-bootstrap 95% interval of the difference that includes 0 (few-shot and "
            "episodic columns: the paired bootstrap alone; mean columns: the paired bootstrap of the difference of means). "
            "Not corrected for multiple comparisons. Records without stored predictions get no marks"
            + (" and no ±." if ci else ".") + ("" if all(m == "top1" for b in self.boards for m in b.metrics.values())
                                              else " Marks and mean intervals are computed for top1 columns only."),
            *(["- `task@set`: the same fit scored on an extra test set of the task (ImageNet-V2, -Sketch, -R, -A); "
               "shown beside the task, not counted in means."]
              if any("@" in c for b in self.boards for c in b.columns) else []),
            "- `n (test)`: the first row gives each task's test-set size.",
            f"- {DAGGER}: the final fit stopped before its tolerance (see the note under the table).",
        ]
        return lines


def _cell_text(cell: Optional[Cell], ci: bool) -> str:
    if cell is None:
        return "–"
    text = format_metric(cell.value, (cell.low, cell.high) if ci and cell.low is not None else None)
    if cell.marked:
        text = f"**{text}**"
    if cell.converged is False:
        text += f" {DAGGER}"
    if not cell.complete and cell.kind != "task":
        text += " (partial)"
    return text


def _board_lines(b: Board, ci: bool) -> list[str]:
    lines = [f"## {b.name}", ""]
    groups = b.values.attrs.get("groups", {})
    for g, cols in groups.items():
        lines.append(f"- **{g}** ({len(cols)} tasks): {', '.join(cols)}")
    if groups:
        lines += ["- **mean**: unweighted mean over all tasks; a mean marked (partial) lacks some tasks", ""]
    cols = b.columns
    lines.append("| model | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    if any(m != "top1" for m in b.metrics.values()):
        lines.append("| metric | " + " | ".join(b.metrics.get(c, "") for c in cols) + " |")
    lines.append("| n (test) | " + " | ".join(_n_test_text(b, c) for c in cols) + " |")
    for model in b.values.index:
        lines.append(f"| {model} | " + " | ".join(_cell_text(b.cells.get((model, c)), ci) for c in cols) + " |")
    if any(c.converged is False for c in b.cells.values()):
        lines += ["", CONVERGENCE_NOTE]
    lines.append("")
    return lines


def _n_test_text(b: Board, col: str) -> str:
    if col in b.means:
        return ""
    sizes = sorted({c.n_test for (_, k), c in b.cells.items() if k == col and c.n_test is not None})
    return "/".join(str(n) for n in sizes) or "–"


def build_leaderboard(records: Iterable[ResultRecord | dict[str, Any]], metric: str = HEADLINE,
                      suite_tasks: Optional[dict[str, dict[str, str]]] = None, with_stats: bool = True,
                      facts: Optional[dict[str, TaskFacts]] = None) -> Leaderboard:
    """Every table of the records with its annotations.

    One table per protocol (id and version); a column is a (task, task version) pair, so results of
    different task or protocol versions never share a column. `mean` is the unweighted mean over the
    columns a model has; a model missing some columns gets a partial mean, flagged in `complete`.
    Results whose tasks carry a group (VTAB: natural, specialized, structured) get their own table per
    suite and split variant, with columns ordered by group and a mean per group; `suite_tasks`
    (suite -> {task: group}) names every task a suite defines, so missing ones make a mean partial;
    `facts` (task_facts of the registry) narrows that to the tasks whose YAML runs the table's protocol
    and names the metric of such an empty column.

    `metric`: HEADLINE (default) shows each column in its task's headline metric (the `metric` row names
    it where one is not top1); any other name shows that metric everywhere. Extra test sets of a task
    (`task@set`) sit beside its column and count in no mean.

    With `with_stats`, the intervals and tie marks of top1 columns (and of means over top1 columns only)
    come from the stored predictions.
    """
    records = [as_record(r) for r in records]
    shown = [r for r in records if r.metric(metric_of(r, metric)) is not None]
    label = _model_labeller(shown)
    by_table: dict[tuple[str, str, str, str], list] = defaultdict(list)
    for r in shown:
        by_table[_table_key(r)].append(r)
    preds = StoredPredictions()
    boards = []
    for key, recs in sorted(by_table.items()):
        board = _board(key, recs, metric, label, suite_tasks, facts)
        annotate(board, preds, with_stats)
        boards.append(board)
    return Leaderboard(boards, metric, len(records), preds.warnings)


def leaderboard_tables(records: Iterable[ResultRecord | dict[str, Any]], metric: str = HEADLINE,
                       suite_tasks: Optional[dict[str, dict[str, str]]] = None) -> dict[str, pd.DataFrame]:
    """One table of values per protocol (and grouped suite): rows are models, columns are tasks, means and `complete`."""
    return {b.name: b.values for b in build_leaderboard(records, metric, suite_tasks, with_stats=False).boards}


def leaderboard_frame(records: Iterable[ResultRecord | dict[str, Any]], metric: str = HEADLINE,
                      suite_tasks: Optional[dict[str, dict[str, str]]] = None) -> pd.DataFrame:
    """The leaderboard as a tidy table, one row per shown number.

    Columns: table, protocol, protocol_version, model, task (a task column, `<group> mean` or
    `mean`), kind (task | group mean | mean), metric, value, ci_low, ci_high (the 95% interval; NA
    when none), n_test, converged (NA when the protocol has no final fit), complete (False for a
    partial mean), is_best and separable_from_best (NA where no paired test was possible).
    """
    return build_leaderboard(records, metric, suite_tasks).frame()


def format_metric(v: Any, interval: Optional[Sequence[float]] = None) -> str:
    """Two decimals, `± half-width` of an interval when given; a dash for a missing (None or NaN) value."""
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if interval is None or (isinstance(interval, float) and pd.isna(interval)):
        return f"{v:.2f}"
    return f"{v:.2f} ± {(interval[1] - interval[0]) / 2:.2f}"


def render_markdown(records: Sequence[ResultRecord | dict[str, Any]], sources: Sequence[str], metric: str = HEADLINE,
                    title: str = "evalbench leaderboard", suite_tasks: Optional[dict[str, dict[str, str]]] = None,
                    ci: bool = True) -> str:
    """The leaderboard as markdown: a generated-file header, then one table per protocol (and grouped suite)."""
    return build_leaderboard(records, metric, suite_tasks).markdown(sources, title, ci)


def require_pyarrow() -> None:
    """Raises EvalbenchError (one line naming the package) when pyarrow, which parquet needs, is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise EvalbenchError("--format parquet needs pyarrow, which is not installed: pip install pyarrow") from None


def write_frame(frame: pd.DataFrame, path: Optional[Path | str], fmt: str) -> str:
    """Write the tidy frame as csv or parquet to `path`; returns the csv text when `path` is None (csv only).

    Raises:
        EvalbenchError: parquet without pyarrow or without a path.
    """
    if fmt == "parquet":
        require_pyarrow()
        if path is None:
            raise EvalbenchError("parquet is a binary format: give a file to write")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
        return ""
    if fmt != "csv":
        raise EvalbenchError(f"unknown table format {fmt!r}; use md, csv or parquet")
    text = frame.to_csv(index=False)
    if path is not None:
        Path(path).write_text(text)
    return text


# ---------------------------------------------------------------------------- run summaries


def group_summary(rows: Iterable[dict[str, Any]], task_groups: dict[str, str], metric: str = HEADLINE,
                  facts: Optional[dict[str, TaskFacts]] = None) -> list[str]:
    """One line per protocol: the mean over a suite's tasks and each group's mean, partial when tasks lack.

    Args:
        rows: dicts with task, protocol and the metric (e.g. the rows `evaluate` returns); under
            HEADLINE, each row's own `metric` and `value` (its task's headline metric).
        task_groups: every task of the suite -> its group (what a complete run covers); tasks
            without a group ("") count in the mean only.
        facts: task_facts of the registry: a protocol's mean then expects only the tasks whose YAML runs it.
    """
    by_protocol: dict[str, dict[str, float]] = defaultdict(dict)
    paths: dict[str, dict[str, str]] = defaultdict(dict)
    shown: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        name = r.get("metric", "top1") if metric == HEADLINE else metric
        value = r.get("value", r.get(name)) if metric == HEADLINE else r.get(metric)
        if r["task"] in task_groups and value is not None and value == value:
            by_protocol[r["protocol"]][r["task"]] = float(value)
            shown[r["protocol"]].add(name)
            if r.get("path"):
                paths[r["protocol"]][r["task"]] = r["path"]
    lines = []
    groups = list(dict.fromkeys(task_groups.values()))
    for pid, scores in sorted(by_protocol.items()):
        top1 = shown[pid] == {"top1"}  # the suite-mean interval resamples top-1 correctness
        expected = _expected_tasks("suite", pid, {"suite": task_groups}, facts) if facts else task_groups
        tasks_of = {t: g for t, g in task_groups.items() if t in expected or t in scores}

        def mean(tasks: list[str], pid: str = pid, scores: dict = scores, top1: bool = top1) -> str:
            return _partial_mean(scores, tasks, paths[pid] if top1 else {})
        parts = [f"{g} {mean([t for t, tg in tasks_of.items() if tg == g])}" for g in groups if g]
        what = "" if top1 else f" (each task's headline metric: {', '.join(sorted(shown[pid]))})"
        lines.append(f"{pid}: mean{what} {mean(list(tasks_of))}" + "".join(f"; {p}" for p in parts))
    return lines


def _partial_mean(scores: dict[str, float], tasks: list[str], paths: Optional[dict[str, str]] = None) -> str:
    """The mean of `tasks`' scores, marked partial when some lack; a dash when none has one. With
    the records' paths, `± half-width` of the suite-mean interval (bootstrap within each task)."""
    got = [scores[t] for t in tasks if t in scores]
    if not got:
        return "–"
    text = f"{sum(got) / len(got):.2f}"
    ci = _suite_ci_from_paths([paths[t] for t in tasks if t in scores and t in paths]) if paths else None
    if ci is not None and len(ci[1]) == len(got):
        text += f" ± {(ci[0].high - ci[0].low) / 2:.2f}"
    return text + ("" if len(got) == len(tasks) else f" (partial: {len(got)} of {len(tasks)} tasks)")


def _suite_ci_from_paths(paths: list[str]):
    """(interval, the arrays used) of the suite mean over these records' stored predictions, or None."""
    from .scoring import suite_interval

    arrays = []
    for p in paths:
        record = read_result(p)
        if record is None or not record.predictions:
            return None
        try:
            arrays.append(record.load_predictions())
        except EvalbenchError:
            return None
    ci = suite_interval(arrays)
    return None if ci is None else (ci, arrays)


def suite_task_groups(tasks: Iterable[Any]) -> dict[str, dict[str, str]]:
    """suite -> {task: group} for every suite (group "" for tasks without one), from TaskSpec-like objects:
    what a complete suite table holds."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for t in tasks:
        for suite in t.suites:
            out[suite][t.name] = t.group or ""
    return dict(out)
