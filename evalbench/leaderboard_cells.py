"""Leaderboard cells and their statistics: each shown number with its interval, and which models are not
separable from a column's best (paired tests on the stored per-item predictions)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from .errors import EvalbenchError
from .results import ResultRecord

ALPHA = 0.05


@dataclass
class Cell:
    """One shown number: the value, its interval, test-set size, convergence and its standing against the column's best."""

    value: float
    kind: str = "task"  # task | group mean | mean
    low: Optional[float] = None
    high: Optional[float] = None
    n_test: Optional[int] = None
    converged: Optional[bool] = None
    complete: bool = True
    best: bool = False
    separable: Optional[bool] = None  # from the column's best; None where no paired test was possible

    @property
    def marked(self) -> bool:
        """Bold: the best, or not separable from it."""
        return self.best or self.separable is False


@dataclass
class Board:
    """One leaderboard table: values (models x columns, sorted, plus `complete`) and the annotated cells."""

    name: str
    protocol: str
    protocol_version: str
    values: pd.DataFrame
    records: dict[tuple[str, str], ResultRecord]  # (model, task column) -> record
    means: dict[str, list[str]]  # mean column -> the task columns it averages
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # task column -> the metric it shows

    @property
    def columns(self) -> list[str]:
        return [c for c in self.values.columns if c != "complete"]


class StoredPredictions:
    """Each record's stored predictions, loaded once; a record without usable ones gives None (and a warning)."""

    def __init__(self) -> None:
        self._cache: dict[int, Optional[dict[str, np.ndarray]]] = {}
        self.warnings: list[str] = []

    def arrays(self, record: ResultRecord) -> Optional[dict[str, np.ndarray]]:
        if id(record) not in self._cache:
            got = None
            if record.predictions:
                try:
                    got = record.load_predictions()
                except EvalbenchError as exc:
                    self.warnings.append(f"{exc} (no tie marks or mean interval from it)")
            self._cache[id(record)] = got
        return self._cache[id(record)]

    def items(self, record: ResultRecord) -> Optional[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
        """(per-item score, y_true, test ids): correctness (bool) of headline predictions; few-shot: the
        correctness averaged over seeds; episodic: per-episode accuracy (episodes are the items)."""
        from .scoring import correct, variants

        arrays = self.arrays(record)
        if arrays is None:
            return None
        if "episode_top1" in arrays:
            episodes = np.asarray(arrays["episode_top1"], dtype=np.float64) / 100.0
            return episodes, np.arange(len(episodes)), None
        if "y_pred" in arrays:
            values = correct(arrays)
        else:
            seeds = [v for v in variants(arrays) if v.startswith("@seed")]
            if not seeds:
                return None
            values = np.mean([correct(arrays, s) for s in seeds], axis=0)
        return values, np.asarray(arrays["y_true"]), arrays.get("test_index")


def _same_items(a: tuple, b: tuple) -> bool:
    if a[0].shape != b[0].shape or not np.array_equal(a[1], b[1]):
        return False
    return a[2] is None or b[2] is None or np.array_equal(a[2], b[2])


def _separable(best: np.ndarray, other: np.ndarray) -> bool:
    """True when `other` is separable from `best`: exact McNemar p < alpha and a paired-bootstrap CI of the
    difference that excludes 0 (0/1 items); the paired bootstrap alone for averaged items."""
    from . import stats

    if best.dtype == bool and other.dtype == bool:
        if stats.mcnemar(best, other).p_value >= ALPHA:
            return False
        ci = stats.paired_bootstrap_diff(best, other)
    else:
        ci = stats.bootstrap_ci(best - other)
    return not ci.low <= 0.0 <= ci.high


def annotate(board: Board, preds: StoredPredictions, with_stats: bool) -> None:
    """Fill board.cells: stored intervals, test sizes and convergence; mean intervals and tie marks from
    predictions (top1 columns, and means over top1 columns only: the paired tests compare per-item correctness)."""
    df = board.values
    for (model, col), r in board.records.items():
        value = df.at[model, col]
        if pd.isna(value):
            continue
        low_high = r.interval(board.metrics[col])
        n = r.n_test if r.n_test is not None else r.uncertainty.get("n_test")
        board.cells[(model, col)] = Cell(float(value), "task", *(low_high or (None, None)), n, r.converged)
    for col, tasks in board.means.items():
        kind = "mean" if col == "mean" else "group mean"
        for model in df.index:
            if pd.isna(df.at[model, col]):
                continue
            have = [t for t in tasks if (model, t) in board.cells]
            cell = Cell(float(df.at[model, col]), kind, complete=len(have) == len(tasks))
            if len(have) == 1:  # the mean of one task is that task: its interval too
                cell.low, cell.high = board.cells[(model, have[0])].low, board.cells[(model, have[0])].high
            elif with_stats and _top1(board, tasks):
                _mean_interval(cell, [board.records[(model, t)] for t in have], preds)
            board.cells[(model, col)] = cell
    if with_stats:
        for col in board.columns:
            if col in board.means and _top1(board, board.means[col]):
                _mark_mean_column(board, col, preds)
            elif col not in board.means and board.metrics.get(col) == "top1":
                _mark_task_column(board, col, preds)


def _top1(board: Board, cols: list[str]) -> bool:
    """True when every one of these columns shows top1 (absent columns of a suite count as top1)."""
    return all(board.metrics.get(c, "top1") == "top1" for c in cols)


def _mean_interval(cell: Cell, records: list[ResultRecord], preds: StoredPredictions) -> None:
    """Bootstrap within each task's test items, then the mean (none unless every task has headline predictions)."""
    from .scoring import suite_interval

    arrays = [preds.arrays(r) for r in records]
    if records and all(a is not None for a in arrays):
        ci = suite_interval(arrays)
        if ci is not None:
            cell.low, cell.high = ci.low, ci.high


def _mark_task_column(board: Board, col: str, preds: StoredPredictions) -> None:
    entries = [(m, board.cells[(m, col)]) for m in board.values.index if (m, col) in board.cells]
    if len(entries) < 2:
        return
    top = max(c.value for _, c in entries)
    ref_model = next(m for m, c in entries if c.value == top)
    ref = preds.items(board.records[(ref_model, col)])
    if ref is None:  # the best has no stored predictions: nothing can be said about ties
        return
    for m, c in entries:
        other = preds.items(board.records[(m, col)])
        if other is None or not _same_items(ref, other):
            continue
        c.best = c.value == top
        c.separable = False if c.best else _separable(ref[0], other[0])


def _mark_mean_column(board: Board, col: str, preds: StoredPredictions) -> None:
    tasks = board.means[col]
    entries = [(m, board.cells[(m, col)]) for m in board.values.index
               if (m, col) in board.cells and board.cells[(m, col)].complete]
    if len(entries) < 2:
        return
    top = max(c.value for _, c in entries)
    per_model = {m: [preds.items(board.records[(m, t)]) for t in tasks] for m, _ in entries}
    ref_model = next(m for m, c in entries if c.value == top)
    ref = per_model[ref_model]
    if any(x is None for x in ref):
        return
    from . import stats

    for m, c in entries:
        other = per_model[m]
        if any(x is None for x in other) or not all(_same_items(a, b) for a, b in zip(ref, other, strict=True)):
            continue
        c.best = c.value == top
        if c.best:
            c.separable = False
            continue
        ci = stats.paired_suite_mean_diff([a[0] for a in ref], [b[0] for b in other])
        c.separable = not ci.low <= 0.0 <= ci.high
