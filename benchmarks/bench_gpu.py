"""GPU check (run it when a CUDA machine is available; under 5 minutes): CUDA extraction throughput with 0 vs N
DataLoader workers, the probes on CUDA vs CPU on the same features (identical predictions at the same C), and
2-GPU torchrun equivalence when two GPUs exist, and the time `--dry-run` predicts for ResNet-50 on the ImageNet suite
on this GPU (the README's ImageNet cost table). Prints one summary line last."""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from evalbench import load_encoder  # noqa: E402
from evalbench.cache import FeatureCache  # noqa: E402
from evalbench.data.bundled import BundledArrays  # noqa: E402
from evalbench.extract import extract_one  # noqa: E402
from evalbench.protocols.knn import KNNProbe  # noqa: E402
from evalbench.protocols.linear import LinearProbe  # noqa: E402


def extraction(model: str, n: int, workers: int, batch_size: int) -> tuple[dict, tuple, tuple]:
    enc = load_encoder(model)  # CUDA when available
    pools = BundledArrays("fashion-mnist-mini").load()
    train = pools["train"]
    idx = np.arange(min(n, len(train)))
    extract_one(enc, train, idx[:batch_size], {"warm": 1}, FeatureCache(tempfile.mkdtemp()), batch_size=batch_size)
    rates, feats = {}, {}
    for w in (0, workers):
        with tempfile.TemporaryDirectory() as d:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            got = extract_one(enc, train, idx, {"w": w}, FeatureCache(d), batch_size=batch_size, num_workers=w)
            torch.cuda.synchronize()
            rates[w] = len(idx) / (time.perf_counter() - t0)
            feats[w] = np.array(got.features)
    same = bool(np.array_equal(feats[0], feats[workers]))
    test = pools["test"]
    with tempfile.TemporaryDirectory() as d:
        tfeat = np.array(extract_one(enc, test, np.arange(len(test)), {"t": 1}, FeatureCache(d), batch_size=batch_size,
                                     num_workers=workers).features)
    return {"rate_0": rates[0], f"rate_{workers}": rates[workers], "workers_identical": same}, \
        (feats[0], train.labels[idx]), (tfeat, test.labels)


def probes(train, test) -> dict:
    (X, y), (Xt, yt) = train, test
    out = {}
    preds = {}
    for dev in ("cpu", "cuda"):
        t0 = time.perf_counter()
        preds[("linear", dev)] = LinearProbe(C=1.0, device=dev).fit(X, y).predict(Xt)
        out[f"linear_{dev}_s"] = time.perf_counter() - t0
    out["linear_same_predictions"] = float(np.mean(preds[("linear", "cpu")] == preds[("linear", "cuda")]))
    t0 = time.perf_counter()
    knn = KNNProbe(k=20, backend="torch").fit(X, y).predict(Xt)
    out["knn_s"] = time.perf_counter() - t0
    out["knn_top1"] = float(np.mean(knn == yt) * 100)
    return out


def two_gpus(model: str) -> dict:
    if torch.cuda.device_count() < 2:
        return {"torchrun_2gpu": "skipped (one GPU)"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp())
    base = ["-m", "evalbench", "run", "--model", model, "--tasks", "fashion-mnist-mini", "--protocols", "knn",
            "--no-progress", "--no-ci"]
    env = {**os.environ, "EVALBENCH_SHARD_SIZE": "1024"}
    subprocess.run([sys.executable, *base, "--output", str(tmp / "o1"), "--cache-dir", str(tmp / "c1")], env=env,
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                    "--master-port", str(port), *base, "--output", str(tmp / "o2"), "--cache-dir", str(tmp / "c2")],
                   env=env, check=True, capture_output=True)
    metrics = [{p.name: json.loads(p.read_text())["metrics"] for p in sorted((tmp / o).glob("*/*/*.json"))}
               for o in ("o1", "o2")]
    feats = [[np.load(p) for p in sorted((tmp / c).glob("features/*/*/features.npy"))] for c in ("c1", "c2")]
    close = all(np.allclose(a, b, atol=1e-4) for a, b in zip(feats[0], feats[1], strict=True))
    return {"torchrun_2gpu_same_metrics": metrics[0] == metrics[1], "torchrun_2gpu_features_close": close}


def imagenet_dry_run() -> dict:
    """`evalbench run --dry-run --device cuda` for ResNet-50 on imagenet-knn + imagenet-linear, timed on a
    photo-sized copy (scripts/make_imagenet_timing_copy.py); its output is printed for the README."""
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(repo / "scripts" / "make_imagenet_timing_copy.py"), tmp], check=True)
        out = subprocess.run([sys.executable, "-m", "evalbench", "run", "--model", "torchvision:resnet50", "--random-init",
                              "--suite", "imagenet", "--tasks", "imagenet-knn", "imagenet-linear", "--data-root", tmp,
                              "--dry-run", "--device", "cuda", "--cache-dir", str(Path(tmp) / "cache")],
                             capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    print(out.stdout + out.stderr)
    return {"imagenet_dry_run_rc": out.returncode}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="effnet-lite0")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)))
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing to check")
        return 0
    t0 = time.perf_counter()
    summary, train, test = extraction(args.model, args.n, args.workers, args.batch_size)
    summary.update(probes(train, test))
    summary.update(two_gpus(args.model))
    summary.update(imagenet_dry_run())
    summary["total_s"] = time.perf_counter() - t0
    print("bench_gpu " + torch.cuda.get_device_name() + ": "
          + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
