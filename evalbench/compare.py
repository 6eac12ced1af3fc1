"""Paired comparison of two runs on the same test items: per-task differences, tests, Holm, suite means."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy import stats as sps

from . import stats
from .errors import EvalbenchError
from .results import ResultRecord, iter_results, slugify
from .scoring import BOOTSTRAP_B, correct

ALPHA = 0.05


@dataclass(frozen=True)
class TaskComparison:
    """One (task, protocol) both runs share: a's and b's top1, a - b with its paired CI, the test and verdict."""

    task: str
    protocol: str
    n: int
    top1_a: float
    top1_b: float
    diff: stats.ConfidenceInterval
    test: str  # "McNemar (exact)" on per-item correctness; "Wilcoxon signed-rank" on per-item averages
    p_value: float
    p_holm: float = float("nan")
    verdict: str = ""


@dataclass(frozen=True)
class SuiteComparison:
    protocol: str
    tasks: int
    diff: stats.ConfidenceInterval


def load_run(spec: str, results_dir: Path | str = "results") -> list[ResultRecord]:
    """The records of one run: a directory of one model's results, or a model name under `results_dir`.

    Raises:
        EvalbenchError: nothing found, or the directory holds several models (name the one to use).
    """
    path = Path(spec)
    if not path.is_dir():
        path = Path(results_dir) / slugify(spec)
        if not path.is_dir():
            raise EvalbenchError(f"{spec!r} is neither a results directory nor a model under {results_dir}/; "
                                 f"pass a path like {Path(results_dir) / 'MODEL'} or --results DIR")
    records = iter_results([path])
    names = sorted({r.model.name for r in records})
    if not records:
        raise EvalbenchError(f"{path} holds no evalbench result records; run `evalbench run` first")
    if len(names) > 1:
        raise EvalbenchError(f"{path} holds results of {len(names)} models ({', '.join(names[:6])}); "
                             f"pass one model's directory, e.g. {path / slugify(names[0])}")
    return records


def _per_item(record: ResultRecord) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """(per-item score in [0, 1], test ids, true labels) of a record's stored predictions.

    Headline predictions give 0/1 correctness; few-shot runs give the correctness averaged over
    seeds; episodic runs give per-episode accuracy (episodes are the items).
    """
    arrays = record.load_predictions()
    if "episode_top1" in arrays:
        episodes = np.asarray(arrays["episode_top1"]) / 100.0
        return episodes, None, np.arange(len(episodes))
    if "y_pred" in arrays:
        values = correct(arrays).astype(np.float64)
    else:
        seeds = [k[len("y_pred"):] for k in arrays if k.startswith("y_pred@seed")]
        values = np.mean([correct(arrays, s) for s in seeds], axis=0)
    return values, arrays.get("test_index"), np.asarray(arrays["y_true"])


def compare_runs(a: Sequence[ResultRecord], b: Sequence[ResultRecord], B: int = BOOTSTRAP_B,
                 seed: int = 0) -> tuple[list[TaskComparison], list[SuiteComparison]]:
    """Pair the two runs' records on (task, protocol) and compare them item by item.

    Raises:
        EvalbenchError: no (task, protocol) is shared, or a shared one was scored on other test items.
    """
    by_key = {(r.task.name, r.protocol.id): r for r in b}
    pairs = [(ra, by_key[(ra.task.name, ra.protocol.id)]) for ra in a if (ra.task.name, ra.protocol.id) in by_key]
    if not pairs:
        raise EvalbenchError(f"the runs share no (task, protocol): {a[0].model.name} has "
                             f"{sorted({r.task.name for r in a})}, {b[0].model.name} has {sorted({r.task.name for r in b})}")
    rows, items = [], {}
    for ra, rb in sorted(pairs, key=lambda p: (p[0].protocol.id, p[0].task.name)):
        va, ida, ya = _per_item(ra)
        vb, idb, yb = _per_item(rb)
        if va.shape != vb.shape or not np.array_equal(ya, yb) or (ida is not None and not np.array_equal(ida, idb)):
            raise EvalbenchError(f"{ra.task.name}/{ra.protocol.id}: the runs were scored on different test items "
                                 f"({len(va)} vs {len(vb)}; task versions {ra.task.version} vs {rb.task.version}, split "
                                 f"variants {ra.task.split_variant or '-'} vs {rb.task.split_variant or '-'}); "
                                 "a paired comparison needs the same items: rerun one with the other's task version")
        binary = np.isin(va, (0.0, 1.0)).all() and np.isin(vb, (0.0, 1.0)).all()
        if binary:
            test, p = "McNemar (exact)", stats.mcnemar(va.astype(bool), vb.astype(bool)).p_value
            diff = stats.paired_bootstrap_diff(va.astype(bool), vb.astype(bool), B=B, seed=seed)
        else:
            test, p = "Wilcoxon signed-rank", _wilcoxon(va, vb)
            diff = stats.bootstrap_ci(va - vb, B=B, seed=seed)
        rows.append(TaskComparison(ra.task.name, ra.protocol.id, len(va), 100 * va.mean(), 100 * vb.mean(), diff, test, p))
        items.setdefault(ra.protocol.id, []).append((va, vb))
    rows = _holm_per_protocol(rows)
    suites = [SuiteComparison(pid, len(v), stats.paired_suite_mean_diff([x for x, _ in v], [y for _, y in v], B=B, seed=seed))
              for pid, v in items.items() if len(v) > 1]
    return rows, suites


def _wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    if not np.any(d):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="zsplit").pvalue)


def _holm_per_protocol(rows: list[TaskComparison]) -> list[TaskComparison]:
    """Holm-correct the p-values within each protocol (the family is a protocol's tasks) and give verdicts."""
    out = list(rows)
    for pid in {r.protocol for r in rows}:
        idx = [i for i, r in enumerate(rows) if r.protocol == pid]
        adjusted, _ = stats.holm([rows[i].p_value for i in idx], alpha=ALPHA)
        for i, p_adj in zip(idx, adjusted, strict=True):
            out[i] = replace(rows[i], p_holm=float(p_adj), verdict=stats.verdict(rows[i].diff, float(p_adj), ALPHA))
    return out
