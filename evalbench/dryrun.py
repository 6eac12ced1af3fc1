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
from .extract import feature_choices
from .runner import TaskPlan, _task_specs, plan_tasks, RunSummary

#: L-BFGS iterations a linear-probe fit typically takes: the rough time figure assumes this many.
TYPICAL_ITERATIONS = 100


def dry_run(model: Union[str, Encoder], suite: Optional[str] = None, tasks: Optional[list[str]] = None, *,
            cache_dir=None, data_root: Optional[str] = None, protocols: Optional[list[str]] = None,
            batch_size: int = 64, device: Optional[str] = None, allow_missing: bool = False,
            dataset=None, task_name: Optional[str] = None, protocol_options: Optional[dict[str, Any]] = None,
            name: Optional[str] = None, **model_options: Any) -> list[dict[str, Any]]:
    """The plan of `evaluate` with the same arguments, computing no features and no probe.

    Returns:
        One row per (task, split) with kind="split": images, cached, to_extract, bytes_to_write,
        est_seconds (from one timed batch of the actual model and preprocessing on the device);
        and one per (task, protocol) with kind="protocol": n, d, classes, fits, cost = n*d*classes*fits.
    """
    encoder = load_encoder(model, **model_options) if isinstance(model, str) else check_encoder(model, "the encoder object")
    if device is not None:
        place_encoder(encoder, resolve_device(device))
    plans = plan_tasks(_task_specs(suite, tasks, dataset, task_name, data_root), protocols, data_root, allow_missing,
                       RunSummary(), protocol_options)
    cache = FeatureCache(cache_dir)
    choices = feature_choices(encoder, name or encoder.name)
    rows: list[dict[str, Any]] = []
    for plan in plans:
        preprocess = per_image(effective_preprocess(encoder.preprocess, plan.task.preprocess))
        rate, dims = _timed_batch(encoder, preprocess, plan, batch_size, [c.key for c in choices])
        for split, (pool_name, idx) in plan.split_pools().items():
            pool = plan.pools[pool_name]
            identity = {**plan.source.identity(), "pool": pool_name, "pool_sha256": pool.digest()}
            cached = [_cached_count(cache, feature_key(c.fingerprint, preprocess.to_dict(), identity, idx)[0], len(idx))
                      for c in choices]
            todo = max(len(idx) - c for c in cached)
            rows.append(dict(kind="split", task=plan.task.name, split=split, images=int(len(idx)), cached=int(min(cached)),
                             to_extract=int(todo),
                             bytes_to_write=int(sum((len(idx) - c) * dims[ch.key] * 4 for c, ch in zip(cached, choices, strict=True))),
                             est_seconds=todo / rate))
        rows += _protocol_rows(plan, sum(dims.values()))
    return rows


def _timed_batch(encoder: Encoder, preprocess, plan: TaskPlan, batch_size: int, keys: list) -> tuple[float, dict]:
    """(images per second of preprocess + encode, feature width per choice) from one warm-up and one timed batch."""
    pool_name, idx = next(iter(plan.splits.values()))
    batch = np.asarray(idx[:batch_size])
    pool = plan.pools[pool_name]
    with torch.inference_mode():
        for _ in range(2):  # the first call pays one-off costs (allocation, kernel selection)
            t0 = time.perf_counter()
            x = preprocess(pool.batch(batch))
            got = {None: encoder.encode(x)} if keys == [None] else encoder.encode_multi(x)
            elapsed = time.perf_counter() - t0
    dims = {k: int(np.asarray(got[k].cpu() if isinstance(got[k], torch.Tensor) else got[k]).shape[1]) for k in keys}
    return len(batch) / max(elapsed, 1e-9), dims


def _cached_count(cache: FeatureCache, key: str, n: int) -> int:
    if (cache.entry_dir(key) / "manifest.json").is_file():
        return n
    return sum(stop - start for start, stop in cache.completed_shards(key))


def _protocol_rows(plan: TaskPlan, d: int) -> list[dict[str, Any]]:
    n = int(len(plan.splits["train"][1])) + (int(len(plan.splits["val"][1])) if "val" in plan.splits else 0)
    rows = []
    for p in plan.protocols:
        params = p.protocol.params
        grid = params.get("c_grid") if params.get("C", 0) is None else None
        fits = (len(grid) + int(params.get("bisection_steps", 0)) + 1) if grid else 1
        rows.append(dict(kind="protocol", task=plan.task.name, protocol=p.entry.id, n=n, d=d, classes=plan.num_classes,
                         fits=fits, cost=n * d * plan.num_classes * fits))
    return rows


def format_rows(rows: list[dict[str, Any]], flops_per_s: Optional[float] = None) -> list[str]:
    """Plain lines for the CLI; a rough linear-probe time when `flops_per_s` (measured matmul rate) is given."""
    lines, total_s, total_b = [], 0.0, 0
    for r in rows:
        if r["kind"] == "split":
            total_s += r["est_seconds"]
            total_b += r["bytes_to_write"]
            lines.append(f"{r['task']}/{r['split']}: {r['images']} images, {r['cached']} cached, {r['to_extract']} to extract, "
                         f"{_bytes(r['bytes_to_write'])} to write, about {_duration(r['est_seconds'])}")
        else:
            line = (f"{r['task']}/{r['protocol']}: probe cost n x d x classes x fits = {r['n']} x {r['d']} x {r['classes']} "
                    f"x {r['fits']} = {r['cost']:.3g}")
            if flops_per_s and r["fits"] > 1:
                line += f" (linear, rough: about {_duration(linear_probe_seconds(r['cost'], flops_per_s))})"
            lines.append(line)
    lines.append(f"total: about {_duration(total_s)} of extraction, {_bytes(total_b)} to write; nothing was computed (--dry-run)")
    return lines


def linear_probe_seconds(cost: float, flops_per_s: float) -> float:
    """Rough time of a C search: TYPICAL_ITERATIONS L-BFGS iterations of 4 n d k flops each (forward and gradient) per fit."""
    return 4 * TYPICAL_ITERATIONS * cost / flops_per_s


def matmul_flops_per_s(device: Optional[str] = None, n: int = 512) -> float:
    """fp32 matrix-multiply rate on the probes' device, from one short timing."""
    dev = resolve_device(device)
    a = torch.randn(n, n, device=dev)
    a @ a
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
