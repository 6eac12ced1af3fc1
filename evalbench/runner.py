"""The only module that wires encoders, data, the feature cache and protocols together."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from .adapters import load_encoder
from .adapters.base import Encoder, check_encoder
from .cache import FeatureCache
from .data import make_source
from .data.splits import resolve_splits
from .data.task_preprocess import task_encoder
from .errors import DataUnavailableError, UnknownNameError
from .extract import extract_features
from .protocols import get_protocol
from .protocols.contract import FeatureSplit, FeatureSplits
from .results import SCHEMA_VERSION, environment, read_result, result_path, slugify, write_result
from .tasks import TaskSpec, resolve_tasks


@dataclass
class RunSummary:
    """Counts the CLI prints after a run."""

    extracted: int = 0
    reused: int = 0
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # tasks left out for lack of data (--allow-missing)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _model_record(spec: str, encoder: Encoder, slug: str) -> dict[str, Any]:
    return {"spec": spec, "name": encoder.name, "slug": slug, "fingerprint": encoder.fingerprint(),
            "preprocess": encoder.preprocess.to_dict()}


def _is_current(record: Optional[dict], model: dict, task: TaskSpec, protocol, params: dict, seed: int) -> bool:
    """An existing record answers this request exactly (same weights, preprocessing, versions, settings)."""
    if not record or record.get("schema_version") != SCHEMA_VERSION:
        return False
    p = record.get("protocol", {})
    return (record.get("model", {}).get("fingerprint") == model["fingerprint"]
            and record.get("model", {}).get("preprocess") == model["preprocess"]
            and record.get("task", {}).get("version") == task.version
            and p.get("name") == protocol.name and p.get("version") == protocol.version
            and p.get("requested") == params and record.get("seed") == seed)


class _NullProgress:
    """Stands in for rich's Progress when progress display is off."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool, console=None):
    if not enabled:
        return _NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


def evaluate(
    model: Union[str, Encoder],
    suite: Optional[str] = None,
    tasks: Optional[list[str]] = None,
    *,
    output: Union[str, Path] = "results",
    cache_dir: Union[str, Path, None] = None,
    data_root: Optional[str] = None,
    protocols: Optional[list[str]] = None,
    batch_size: int = 64,
    seed: int = 0,
    force: bool = False,
    name: Optional[str] = None,
    progress: bool = True,
    console=None,
    summary: Optional[RunSummary] = None,
    allow_missing: bool = False,
    **model_options: Any,
) -> pd.DataFrame:
    """Evaluate one encoder on a suite or a list of tasks; write one result JSON per (task, protocol).

    Args:
        model: a model spec (see `load_encoder`) or an Encoder object.
        suite / tasks: what to run; `tasks` narrows a suite or stands alone.
        output: results directory; records go to output/<model>/<task>/<protocol>.json.
        cache_dir: feature cache root (default $EVALBENCH_HOME/cache or the XDG cache).
        data_root: where datasets that are not bundled live.
        protocols: run only these protocol ids.
        force: recompute results even when a matching record exists (features still come from the cache).
        name: the model's name in results and leaderboards (default: the encoder's own).
        allow_missing: score the tasks whose data is here and list the others in summary.missing,
            instead of refusing the whole run.
        **model_options: passed to `load_encoder` (arch, random_init, input_size, ...).

    Returns:
        One row per (task, protocol) with the metrics and the result path.

    Raises:
        EvalbenchError: unknown names, missing data or checkpoints: before anything is computed.
    """
    task_specs = resolve_tasks(suite, tasks)
    if isinstance(model, str):
        spec, encoder = model, load_encoder(model, **model_options)
    else:
        spec = getattr(model, "spec", None) or f"object:{type(model).__module__}.{type(model).__qualname__}"
        encoder = check_encoder(model, "the encoder object")
    if name:
        encoder.name = name
    summary = summary if summary is not None else RunSummary()

    # Check every task's data and protocol settings before any extraction, so a mistake in the
    # last task does not surface after an hour of work.
    plans, missing = [], []
    for task in task_specs:
        source = make_source(task.source, task.source_options, data_root=data_root)
        try:
            pools = source.load()
        except DataUnavailableError as exc:
            missing.append((task.name, str(exc)))
            continue
        splits = resolve_splits(task.splits, pools, task.path)
        entries = [e for e in task.protocols if not protocols or e.id in protocols or e.name in protocols]
        plans.append((task, source, pools, splits, [(e, get_protocol(e.name, e.params)) for e in entries]))
    if missing and not allow_missing:
        if len(missing) == 1 and len(task_specs) == 1:
            raise DataUnavailableError(missing[0][1])
        raise DataUnavailableError(
            f"{len(missing)} of {len(task_specs)} tasks have no data here (pass --allow-missing to score the rest): "
            + " | ".join(f"{name}: {msg}" for name, msg in missing))
    summary.missing.extend(name for name, _ in missing)
    if protocols and not any(p[4] for p in plans):
        known = sorted({e.id for t in task_specs for e in t.protocols})
        raise UnknownNameError("protocol", protocols[0], known)

    cache = FeatureCache(cache_dir)
    # Several feature choices (--pool cls,mean,last4): one evaluation each, with its own name,
    # cache entries and records, over the same loaded data; extract.py fills every variant's
    # cache entry from one forward pass.
    multi = len(getattr(encoder, "pools", ())) > 1 and hasattr(encoder, "variants")
    rows = []
    with _progress(progress, console) as bar:
        for enc in (encoder.variants() if multi else [encoder]):
            rows += _evaluate_encoder(enc, spec, plans, cache, output, batch_size, seed, force, summary, bar)
    return pd.DataFrame(rows)


def _evaluate_encoder(encoder: Encoder, spec: str, plans: list, cache: FeatureCache, output, batch_size: int,
                      seed: int, force: bool, summary: RunSummary, bar) -> list[dict[str, Any]]:
    """Extract (or reuse) features and run every planned protocol for one encoder; result rows."""
    slug = slugify(encoder.name)
    model_rec = _model_record(spec, encoder, slug)
    env: dict[str, Any] = {}  # environment facts: constant for the run, collected at the first record
    rows = []
    for task, source, pools, splits, runs in plans:
        todo = []
        task_enc = task_encoder(encoder, task.preprocess)  # VTAB: no centre crop; recorded below
        task_model = {**model_rec, "preprocess": task_enc.preprocess.to_dict()}
        if task.preprocess:
            task_model["preprocess_override"] = dict(task.preprocess)
        for entry, proto in runs:
            path = result_path(output, slug, task.name, entry.id)
            existing = None if force else read_result(path)
            if _is_current(existing, task_model, task, proto, entry.params, seed):
                summary.skipped.append(f"{task.name}/{entry.id}")
                rows.append(_row(existing, path, "reused"))
            else:
                todo.append((entry, proto, path))
        if not todo:
            continue
        t0 = time.perf_counter()
        feats, split_sizes = {}, {}
        for split_name, (pool_name, idx) in splits.items():
            identity = {**source.identity(), "pool": pool_name, "pool_sha256": pools[pool_name].digest()}
            got = extract_features(task_enc, pools[pool_name], idx, identity, cache, batch_size=batch_size,
                                   progress=bar, description=f"extract {task.name}/{split_name}")
            summary.extracted += got.extracted
            summary.reused += len(idx) - got.extracted
            feats[split_name] = got
            split_sizes[split_name] = int(len(idx))
        extract_s = time.perf_counter() - t0
        num_classes = len(next(iter(pools.values())).classes)
        # protocols read every row many times: load the memory-mapped features into RAM once
        loaded = {k: FeatureSplit(np.array(v.features), v.labels) for k, v in feats.items()}
        fsplits = FeatureSplits(train=loaded["train"], test=loaded["test"], val=loaded.get("val"), num_classes=num_classes)
        for entry, proto, path in todo:
            started, t1 = _now(), time.perf_counter()
            if not env:
                env.update(environment(str(getattr(encoder, "device", "cpu"))))
            outcome = proto.evaluate(fsplits, seed=seed, progress=bar)
            record = {
                "schema_version": SCHEMA_VERSION,
                "model": task_model,
                "task": {"name": task.name, "version": task.version, "dataset": source.identity(),
                         "splits": split_sizes, "split_definition": task.splits, "num_classes": num_classes,
                         "file": Path(task.path).name, "group": task.group or None,
                         "suites": list(task.suites)},
                "protocol": {"id": entry.id, "name": proto.name, "version": proto.version,
                             "requested": entry.params, "params": outcome.params},
                "metrics": outcome.metrics,
                "details": outcome.details,
                "seed": seed,
                "cache_keys": {k: v.key for k, v in feats.items()},
                "environment": env,
                "timing": {"started": started, "finished": _now(), "extract_seconds": round(extract_s, 3),
                           "protocol_seconds": round(time.perf_counter() - t1, 3)},
            }
            write_result(path, record)
            summary.computed.append(f"{task.name}/{entry.id}")
            rows.append(_row(record, path, "computed"))
    return rows


def _row(record: dict, path: Path, status: str) -> dict[str, Any]:
    m = record["metrics"]
    return {"model": record["model"]["name"], "task": record["task"]["name"], "group": record["task"].get("group"),
            "protocol": record["protocol"]["id"],
            "top1": m.get("top1"), "top5": m.get("top5"), "mean_per_class": m.get("mean_per_class"),
            "status": status, "path": str(path)}
