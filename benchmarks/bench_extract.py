"""Benchmark: evalbench's extraction (cache shards, DataLoader workers) against a bare loop with the same model,
the same optimisations (channels_last + conv-BN fusion, inference mode) and the same images; and peak RSS of
extraction over generated pools of two sizes (is memory flat in the dataset size?)."""
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
    args = ap.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.rss_size)
    if args.skip != "speed":
        speed(args)
    if args.skip != "memory":
        memory(args)


if __name__ == "__main__":
    main()
