"""GPU check (run it when a CUDA machine is available; under 5 minutes): CUDA extraction throughput with 0 vs N
DataLoader workers, the probes on CUDA vs CPU on the same features (identical predictions at the same C), and
2-GPU torchrun equivalence when two GPUs exist, and the time `--dry-run` predicts for ResNet-50 on the ImageNet suite
on this GPU (the README's ImageNet cost table), and one linear-probe fit at ImageNet width against the rough time
`--dry-run` states for it. Needs evalbench installed (`pip install -e .`). Prints one summary line last."""
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


def imagenet_dry_run(train_per_class: int = 1500, val_per_class: int = 250) -> dict:
    """`evalbench run --dry-run --device cuda` for ResNet-50 on imagenet-knn + imagenet-linear on a photo-sized copy
    (scripts/make_imagenet_timing_copy.py; its output is printed for the README), then the real extraction of that
    copy timed as a run from an empty cache minus the same run again with the features cached."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(repo / "scripts" / "make_imagenet_timing_copy.py"), tmp, "--train-per-class",
                        str(train_per_class), "--val-per-class", str(val_per_class)], check=True)
        common = [sys.executable, "-m", "evalbench", "run", "--model", "torchvision:resnet50", "--random-init",
                  "--suite", "imagenet", "--data-root", tmp, "--device", "cuda", "--cache-dir", str(Path(tmp) / "cache")]
        out = subprocess.run([*common, "--tasks", "imagenet-knn", "imagenet-linear", "--dry-run"],
                             capture_output=True, text=True, env=env)
        print(out.stdout + out.stderr)
        real = [*common, "--tasks", "imagenet-knn", "--protocols", "knn", "--no-ci", "--no-progress",
                "--output", str(Path(tmp) / "results")]
        seconds = []
        for _ in range(2):  # from an empty cache, then with every feature cached
            t0 = time.perf_counter()
            subprocess.run(real, check=True, capture_output=True, env=env)
            seconds.append(time.perf_counter() - t0)
    return {"imagenet_dry_run_rc": out.returncode, "imagenet_copy_images": 4 * (train_per_class + val_per_class),
            "imagenet_copy_extract_s": seconds[0] - seconds[1]}


def linear_at_scale(n: int = 100_000, d: int = 2048, k: int = 1000) -> dict:
    """One linear-probe fit at ImageNet-like width (synthetic, n x 2048 x 1000 classes) on CUDA, against the
    rough figure `--dry-run` gives for it (TYPICAL_ITERATIONS iterations at the measured matmul rate)."""
    from evalbench.dryrun import TYPICAL_ITERATIONS, linear_probe_seconds, matmul_flops_per_s
    g = torch.Generator(device="cuda").manual_seed(0)
    y = torch.randint(0, k, (n,), device="cuda", generator=g)
    means = torch.randn(k, d, device="cuda", generator=g) * 0.35
    X = (means[y] + torch.randn(n, d, device="cuda", generator=g)).relu_().cpu().numpy()
    y = y.cpu().numpy()
    flops = matmul_flops_per_s("cuda")
    LinearProbe(C=1.0, device="cuda").fit(X[:2000], y[:2000])  # warm-up: CUDA context and cuBLAS handles
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    probe = LinearProbe(C=1.0, device="cuda").fit(X, y)
    torch.cuda.synchronize()
    fit_s = time.perf_counter() - t0
    cost = n * d * k
    polish = probe.polish_info_
    return {"scale_n": n, "scale_fit_s": fit_s, "scale_fit_iters": int(probe.n_iter_),
            "scale_fit_evals": int(probe.fit_info_.n_evals + (polish.n_evals if polish else 0)),
            "scale_s_per_iter": fit_s / max(probe.n_iter_, 1),
            "scale_est_s_per_iter": linear_probe_seconds(cost, flops) / TYPICAL_ITERATIONS,
            "matmul_tflops": flops / 1e12, "matmul_tflops_512": matmul_flops_per_s("cuda", 512) / 1e12}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="effnet-lite0")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)))
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--parts", nargs="+", default=["extraction", "torchrun", "imagenet", "linear-scale"],
                    choices=["extraction", "torchrun", "imagenet", "linear-scale"])
    ap.add_argument("--scale-n", type=int, default=100_000, help="rows of the linear-scale fit (ImageNet train: 1281167)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing to check")
        return 0
    t0 = time.perf_counter()
    summary: dict = {}
    if "extraction" in args.parts:
        summary, train, test = extraction(args.model, args.n, args.workers, args.batch_size)
        summary.update(probes(train, test))
    if "torchrun" in args.parts:
        summary.update(two_gpus(args.model))
    if "imagenet" in args.parts:
        summary.update(imagenet_dry_run())
    if "linear-scale" in args.parts:
        summary.update(linear_at_scale(args.scale_n))
    summary["total_s"] = time.perf_counter() - t0
    print("bench_gpu " + torch.cuda.get_device_name() + ": "
          + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
