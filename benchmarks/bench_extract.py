"""Benchmark: evalbench's extraction (cache shards, DataLoader workers) against a bare loop with the same model,
the same optimisations (channels_last + conv-BN fusion, inference mode) and the same images; peak RSS of
extraction over generated pools of two sizes (is memory flat in the dataset size?); and with --dtype-compare,
`--dtype bf16` against fp32 on this CPU: extraction time, how far the features move, and the linear and k-NN
probe accuracy on fashion-mnist-mini from each (features through evalbench's cache, $EVALBENCH_HOME)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from evalbench import load_encoder  # noqa: E402
from evalbench.cache import FeatureCache  # noqa: E402
from evalbench.data.base import ImagePool  # noqa: E402
from evalbench.data.bundled import BundledArrays  # noqa: E402
from evalbench.extract import extract_one  # noqa: E402


def bare_loop(enc, pool: ImagePool, idx: np.ndarray, batch_size: int) -> np.ndarray:
    """What a hand-written script does: preprocess a batch, run the (already fused, channels_last) module."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(idx), batch_size):
            x = enc.preprocess(pool.batch(idx[s:s + batch_size])).contiguous(memory_format=torch.channels_last)
            out.append(enc.module(x)[enc.pools[0]].float().numpy())
    return np.concatenate(out)


def timed(fn, *a, **kw):
    """(wall seconds, CPU seconds of this process, value): CPU time is far less sensitive to other load."""
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn(*a, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, value


def speed(args) -> None:
    enc = load_encoder(args.model)
    pool = BundledArrays("fashion-mnist-mini").load()["train"]
    idx = np.arange(args.n)
    bare_loop(enc, pool, idx[:args.batch_size], args.batch_size)  # warm-up: allocation, kernel choice
    names = ["bare loop", *(f"evalbench workers={w}" for w in args.workers)]
    wall, cpu, feats = {n: [] for n in names}, {n: [] for n in names}, {}
    for rep in range(args.repeats):  # interleaved, order alternating, so other load hits every variant alike
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            with tempfile.TemporaryDirectory() as d:
                if name == "bare loop":
                    t, c, f = timed(bare_loop, enc, pool, idx, args.batch_size)
                else:
                    w = int(name.split("=")[1])
                    t, c, got = timed(extract_one, enc, pool, idx, {"bench": rep}, FeatureCache(d),
                                      batch_size=args.batch_size, num_workers=w)
                    f = np.array(got.features)
            wall[name].append(t)
            cpu[name].append(c)
            feats[name] = f
    print(f"{args.model}, {args.n} Fashion-MNIST images at {enc.preprocess.input_size} px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats:")
    for name in names:
        ratio = np.median(np.array(wall[name]) / np.array(wall["bare loop"]))
        cratio = np.median(np.array(cpu[name]) / np.array(cpu["bare loop"]))
        same = np.array_equal(feats[name], feats["bare loop"])
        print(f"  {name:24s} wall best {min(wall[name]):6.2f} s, median {np.median(wall[name]):6.2f} s; "
              f"median paired ratio to bare: wall {ratio:4.2f}x, CPU time of this process {cratio:4.2f}x; "
              f"features identical to bare: {same}")


def rss_child(n: int, size: int) -> None:
    """Extract n generated size x size images with a tiny conv net and print peak RSS (own process)."""
    from evalbench.adapters.base import Preprocess

    class Tiny:
        name, preprocess = "tiny-conv", Preprocess(size, size, keep_aspect=False)
        conv = torch.nn.Conv2d(3, 64, 3)

        def fingerprint(self):
            return {"adapter": "tiny-conv"}

        def encode(self, x):
            return self.conv(x).mean(dim=(2, 3))

    rng = np.random.default_rng(0)
    pool = ImagePool(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, 10, n), list("0123456789"))
    enc = Tiny()
    with tempfile.TemporaryDirectory() as d:  # warm-up: allocator and kernels, so the peak below is extraction's
        extract_one(enc, pool, np.arange(min(n, 512)), {"warm": n}, FeatureCache(d), batch_size=256)
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM (peak RSS) to the current RSS
        f.write("5")
    with tempfile.TemporaryDirectory() as d:
        extract_one(enc, pool, np.arange(n), {"rss": n}, FeatureCache(d), batch_size=256)
    print(f"{n} {before / 1024:.0f} {_status('VmHWM') / 1024:.0f}")


def _status(field: str) -> int:
    """A /proc/self/status figure in kB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory(args) -> None:
    print(f"peak RSS of extraction ({args.rss_size} x {args.rss_size} generated images, 64-d features, own process each):")
    for n in args.rss_n:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--rss-size", str(args.rss_size)],
                             capture_output=True, text=True, check=True).stdout.split()
        n_, before, peak = map(int, out)
        print(f"  {n_:>7d} images: RSS before extraction {before} MB (pool in memory: {n_ * args.rss_size ** 2 * 3 / 1e6:.0f} MB), "
              f"peak during extraction {peak} MB: +{peak - before} MB")


def dtype_compare(args) -> None:
    """bf16 autocast against fp32: interleaved timing, feature drift, and the probes' accuracy on each."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _real_features import RealSet, load_set

    from evalbench.protocols import get_protocol
    from evalbench.stats import paired_bootstrap_diff

    encs = {d: load_encoder(args.model, dtype=d) for d in ("fp32", "bf16")}
    pool = BundledArrays("fashion-mnist-mini").load()["train"]
    batches = [torch.as_tensor(pool.batch(np.arange(s, min(s + args.batch_size, args.n)))) for s in range(0, args.n, args.batch_size)]
    inputs = [encs["fp32"].preprocess(b) for b in batches]
    for enc in encs.values():  # warm-up: kernel choice, oneDNN primitive caches
        enc.encode(inputs[0])
    wall = {d: [] for d in encs}
    for rep in range(args.repeats):  # interleaved, alternating order
        for d in (encs if rep % 2 == 0 else list(encs)[::-1]):
            t0 = time.perf_counter()
            for x in inputs:
                encs[d].encode(x)
            wall[d].append(time.perf_counter() - t0)
    ratio = np.median(np.array(wall["bf16"]) / np.array(wall["fp32"]))
    print(f"{args.model}, {args.n} images at {encs['fp32'].preprocess.input_size} px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats: fp32 median {np.median(wall['fp32']):.2f} s, "
          f"bf16 median {np.median(wall['bf16']):.2f} s; bf16 / fp32 = {ratio:.2f}x (median of paired ratios; < 1: bf16 faster)")
    sets = {d: load_set(RealSet(d, args.model, "fashion-mnist-mini", model_options=(("dtype", d),))) for d in encs}
    a, b = (np.concatenate([sets[d].train.X, sets[d].val.X, sets[d].test.X]).astype(np.float64) for d in ("fp32", "bf16"))
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-12)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    print(f"features (fashion-mnist-mini, {len(a)} images): relative L2 difference median {np.median(rel):.2e}, "
          f"max {rel.max():.2e}; cosine similarity min {cos.min():.5f}")
    for proto in ("linear", "knn"):
        outs = {d: get_protocol(proto).evaluate(sets[d], seed=0) for d in encs}
        y = sets["fp32"].test.y
        ci = paired_bootstrap_diff(np.asarray(outs["bf16"].predictions["y_pred"]) == y,
                                   np.asarray(outs["fp32"].predictions["y_pred"]) == y)
        extra = f", C {outs['fp32'].params['C']:.4g} / {outs['bf16'].params['C']:.4g}" if proto == "linear" else ""
        print(f"  {proto}: top1 fp32 {outs['fp32'].metrics['top1']:.2f}, bf16 {outs['bf16'].metrics['top1']:.2f}; "
              f"bf16 - fp32 {ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}] (paired 95% CI){extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="effnet-lite0")
    ap.add_argument("--n", type=int, default=512, help="images timed (default 512)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--rss-n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rss-size", type=int, default=16)
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--skip", choices=["speed", "memory"])
    ap.add_argument("--dtype-compare", action="store_true",
                    help="only: bf16 vs fp32 extraction time, feature drift and probe accuracy (fashion-mnist-mini)")
    args = ap.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.rss_size)
    if args.dtype_compare:
        return dtype_compare(args)
    if args.skip != "speed":
        speed(args)
    if args.skip != "memory":
        memory(args)


if __name__ == "__main__":
    main()
