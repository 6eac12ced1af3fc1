"""`run --dry-run`: what a run would compute and what it would cost, measured on one timed batch, without computing it."""
from __future__ import annotations

import time
from typing import Any, Optional, Union

import numpy as np
import torch

from .adapters import load_encoder
from .adapters.base import Encoder, check_encoder
from .cache import FeatureCache, feature_key
from .data.ragged import per_image
from .data.task_preprocess import effective_preprocess
from .distributed import place_encoder, resolve_device
from .extract import default_num_workers, feature_choices
from .runner import TaskPlan, _task_specs, plan_tasks, RunSummary
from .threads import intra_op_threads

#: L-BFGS iterations a linear-probe fit typically takes: the rough time figure assumes this many.
TYPICAL_ITERATIONS = 100


def dry_run(model: Union[str, Encoder], suite: Optional[str] = None, tasks: Optional[list[str]] = None, *,
            cache_dir=None, data_root: Optional[str] = None, protocols: Optional[list[str]] = None,
            batch_size: int = 64, device: Optional[str] = None, allow_missing: bool = False,
            dataset=None, task_name: Optional[str] = None, protocol_options: Optional[dict[str, Any]] = None,
            name: Optional[str] = None, num_workers: Optional[int] = None, **model_options: Any) -> list[dict[str, Any]]:
    """The plan of `evaluate` with the same arguments, computing no features and no probe.

    Returns:
        One row per (task, split) with kind="split": images, cached, to_extract, bytes_to_write,
        est_seconds (from one timed batch of the actual model and preprocessing on the device, with
        `num_workers` DataLoader workers decoding); and one per (task, protocol) with kind="protocol":
        n, d, classes, fits, cost = n*d*classes*fits. A source that knows the size of its complete
        dataset (`full_scale()`, e.g. ImageNet) adds `full` to the rows of a partial copy: the same
        figures for the complete data, so a small local sample predicts the cost of the real run.
    """
    encoder = load_encoder(model, **model_options) if isinstance(model, str) else check_encoder(model, "the encoder object")
    if device is not None:
        place_encoder(encoder, resolve_device(device))
    plans = plan_tasks(_task_specs(suite, tasks, dataset, task_name, data_root), protocols, data_root, allow_missing,
                       RunSummary(), protocol_options)
    cache = FeatureCache(cache_dir)
    choices = feature_choices(encoder, name or encoder.name)
    workers = default_num_workers() if num_workers is None else num_workers
    on_cpu = str(getattr(encoder, "device", "cpu")).startswith("cpu")
    rows: list[dict[str, Any]] = []
    for plan in plans:
        preprocess = per_image(effective_preprocess(encoder.preprocess, plan.task.preprocess))
        pre_s, enc_s, dims = _timed_batch(encoder, preprocess, plan, batch_size, [c.key for c in choices], workers)
        rate = images_per_second(pre_s, enc_s, workers, on_cpu)
        full = _full_scale(plan)
        for split, (pool_name, idx) in plan.split_pools().items():
            pool = plan.pools[pool_name]
            identity = {**plan.source.identity(), "pool": pool_name, "pool_sha256": pool.digest()}
            keys = [feature_key(c.fingerprint, preprocess.to_dict(), identity, idx)[0] for c in choices]
            cached = [_cached_count(cache, k, len(idx)) for k in keys]
            todo = max(len(idx) - c for c in cached)
            row = dict(kind="split", task=plan.task.name, split=split, key=keys[0], images=int(len(idx)), cached=int(min(cached)),
                       to_extract=int(todo),
                       bytes_to_write=int(sum((len(idx) - c) * dims[ch.key] * 4 for c, ch in zip(cached, choices, strict=True))),
                       est_seconds=todo / rate, images_per_second=rate)
            n_full = _full_split_size(full, pool_name, pool, idx)
            if n_full is not None:
                row["full"] = dict(images=n_full, bytes_to_write=n_full * sum(dims.values()) * 4, est_seconds=n_full / rate)
            rows.append(row)
        rows += _protocol_rows(plan, sum(dims.values()), full)
    return rows


def images_per_second(pre_s: float, enc_s: float, workers: int, on_cpu: bool) -> float:
    """Extraction rate from per-image decode+preprocess and encode times.

    In process (0 workers) the two add up. With workers they overlap: on a GPU the slower of the
    encoder and the workers (decode spread over them) sets the pace; on the CPU the encoder's threads
    and the workers share the cores, so the times add, with the decode spread over the workers.
    """
    if workers <= 0:
        per_image = pre_s + enc_s
    elif on_cpu:
        per_image = pre_s / workers + enc_s
    else:
        per_image = max(pre_s / workers, enc_s)
    return 1.0 / max(per_image, 1e-12)


def _timed_batch(encoder: Encoder, preprocess, plan: TaskPlan, batch_size: int, keys: list,
                 workers: int = 0) -> tuple[float, float, dict]:
    """(seconds per image of decode + preprocess, of encode, feature width per choice), from one warm-up and one
    timed batch.

    With DataLoader workers the decode is timed on one intra-op thread, as each worker runs it (PyTorch gives
    workers one thread): timed on all of the main process's threads it came out 3x too fast on a 16-core
    machine, and the complete-ImageNet figure with it.
    """
    pool_name, idx = next(iter(plan.splits.values()))
    batch = np.asarray(idx[:batch_size])
    pool = plan.pools[pool_name]
    with torch.inference_mode():
        for _ in range(2):  # the first call pays one-off costs (allocation, kernel selection)
            t0 = time.perf_counter()
            with intra_op_threads(1 if workers > 0 else None):
                x = preprocess(pool.batch(batch))
            t1 = time.perf_counter()
            got = {None: encoder.encode(x)} if keys == [None] else encoder.encode_multi(x)
            # encoders hand back CPU arrays or tensors; reading the shape waits for a GPU result
            dims = {k: int(np.asarray(got[k].cpu() if isinstance(got[k], torch.Tensor) else got[k]).shape[1]) for k in keys}
            t2 = time.perf_counter()
    return (t1 - t0) / len(batch), (t2 - t1) / len(batch), dims


def _full_scale(plan: TaskPlan) -> Optional[dict[str, Any]]:
    """The complete dataset's pool sizes and class count, when the source knows them (`full_scale()`)."""
    method = getattr(plan.source, "full_scale", None)
    return method() if callable(method) else None


def _full_split_size(full: Optional[dict[str, Any]], pool_name: str, pool, idx) -> Optional[int]:
    """A whole-pool split's size in the complete dataset, where that differs from the copy here (else None)."""
    if not full or len(idx) != len(pool):
        return None
    n = full["pools"].get(pool_name)
    return int(n) if n is not None and n != len(idx) else None


def _cached_count(cache: FeatureCache, key: str, n: int) -> int:
    if (cache.entry_dir(key) / "manifest.json").is_file():
        return n
    return sum(stop - start for start, stop in cache.completed_shards(key))


def _protocol_rows(plan: TaskPlan, d: int, full: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    fit_splits = [s for s in ("train", "val") if s in plan.splits]
    n = sum(int(len(plan.splits[s][1])) for s in fit_splits)
    n_full = 0
    for s in fit_splits:
        pool_name, idx = plan.splits[s]
        n_full += _full_split_size(full, pool_name, plan.pools[pool_name], idx) or int(len(idx))
    classes_full = int(full.get("classes", plan.num_classes)) if full else plan.num_classes
    rows = []
    for p in plan.protocols:
        params = p.protocol.params
        grid = params.get("c_grid") if params.get("C", 0) is None else None
        fits = (len(grid) + int(params.get("bisection_steps", 0)) + 1) if grid else 1
        row = dict(kind="protocol", task=plan.task.name, protocol=p.entry.id, n=n, d=d, classes=plan.num_classes,
                   fits=fits, cost=n * d * plan.num_classes * fits)
        if full and (n_full, classes_full) != (n, plan.num_classes):
            row["full"] = dict(n=n_full, classes=classes_full, cost=n_full * d * classes_full * fits)
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]], flops_per_s: Optional[float] = None) -> list[str]:
    """Plain lines for the CLI; a rough linear-probe time when `flops_per_s` (measured matmul rate) is given.

    Rows with `full` (a partial copy of a dataset whose complete size is known) also say what the
    complete data would cost, and the totals gain a "complete dataset" line. Splits with the same
    features (ImageNet's train in several tasks: same pool, same images) count once in the totals,
    as the cache extracts them once.
    """
    lines: list[str] = []
    once: dict[str, tuple[float, int]] = {}
    full: dict[str, tuple[float, int]] = {}
    for r in rows:
        if r["kind"] == "split":
            once[r.get("key", id(r))] = (r["est_seconds"], r["bytes_to_write"])
            f = r.get("full", {"est_seconds": r["est_seconds"], "bytes_to_write": r["bytes_to_write"]})
            full[r.get("key", id(r))] = (f["est_seconds"], f["bytes_to_write"])
            line = (f"{r['task']}/{r['split']}: {r['images']} images, {r['cached']} cached, {r['to_extract']} to extract, "
                    f"{_bytes(r['bytes_to_write'])} to write, about {_duration(r['est_seconds'])}")
            if "full" in r:
                line += (f"; complete dataset: {f['images']:,} images, {_bytes(f['bytes_to_write'])}, "
                         f"about {_duration(f['est_seconds'])}")
            lines.append(line)
        else:
            line = (f"{r['task']}/{r['protocol']}: probe cost n x d x classes x fits = {r['n']} x {r['d']} x {r['classes']} "
                    f"x {r['fits']} = {r['cost']:.3g}")
            if flops_per_s and r["fits"] > 1:
                line += f" (linear, rough: about {_duration(linear_probe_seconds(r['cost'], flops_per_s))})"
            if "full" in r:
                f = r["full"]
                line += f"; complete dataset: {f['n']:,} x {r['d']} x {f['classes']} x {r['fits']} = {f['cost']:.3g}"
                if flops_per_s and r["fits"] > 1:
                    line += f" (linear, rough: about {_duration(linear_probe_seconds(f['cost'], flops_per_s))})"
            lines.append(line)
    total_s, total_b = sum(s for s, _ in once.values()), sum(b for _, b in once.values())
    lines.append(f"total: about {_duration(total_s)} of extraction, {_bytes(total_b)} to write; nothing was computed (--dry-run)")
    if any("full" in r for r in rows):
        lines.append(f"complete dataset: about {_duration(sum(s for s, _ in full.values()))} of extraction, "
                     f"{_bytes(sum(b for _, b in full.values()))} to write")
    return lines


def linear_probe_seconds(cost: float, flops_per_s: float) -> float:
    """Rough time of a C search: TYPICAL_ITERATIONS L-BFGS iterations of 4 n d k flops each (forward and gradient) per fit."""
    return 4 * TYPICAL_ITERATIONS * cost / flops_per_s


def matmul_flops_per_s(device: Optional[str] = None, n: Optional[int] = None) -> float:
    """fp32 matrix-multiply rate on the probes' device, from one short timing.

    On a GPU the matrix is large enough to measure throughput rather than kernel-launch latency (which is
    what a 512 x 512 product measures there), and the clock starts after a synchronised warm-up so cuBLAS's
    start-up is not counted.
    """
    dev = resolve_device(device)
    n = n or (4096 if dev.type == "cuda" else 512)
    a = torch.randn(n, n, device=dev)
    a @ a
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(4):
        a @ a
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return 4 * 2 * n ** 3 / max(time.perf_counter() - t0, 1e-9)


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _duration(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")
