"""Benchmark: the cost of verifying cache checksums on a cached quick-suite run (warm cache, --force).

For each model, one run fills the cache; then the same `evalbench run --suite quick --force` is timed
alternately with and without checksum verification (FeatureCache.verify_checksums), in one process,
and the time spent hashing is measured directly as well. Whole runs are noisy on a shared machine, so the
read path alone (every entry of the run read back, best of 10, verification on vs off) is timed too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from evalbench import cache as cache_mod  # noqa: E402
from evalbench.cli import main  # noqa: E402


def run(model: str, root: str) -> float:
    argv = ["run", "--model", model, "--suite", "quick", "--force", "--no-progress", "--output", f"{root}/results",
            "--cache-dir", f"{root}/cache"]
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            assert main(argv) == 0
        finally:
            sys.stdout = stdout
    return time.perf_counter() - t0


def _read_path(cache_dir: str) -> tuple[float, float]:
    """Seconds to read (and check) every entry of the cache, best of 10, with and without checksum verification."""
    import json
    from pathlib import Path

    import numpy as np

    cache = cache_mod.FeatureCache(cache_dir)
    keys = [p.parent.name for p in Path(cache_dir).rglob("manifest.json")]
    labels = {k: np.load(cache.entry_dir(k) / "labels.npy") for k in keys}
    assert all(json.loads((cache.entry_dir(k) / "manifest.json").read_text())["key"] == k for k in keys)
    best = {}
    for verify in (True, False):
        cache_mod.FeatureCache.verify_checksums = verify
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            for k in keys:
                got = cache.read(k, labels[k])
                assert got is not None
                np.asarray(got.features).sum()  # touch the data as the protocols do
            times.append(time.perf_counter() - t0)
        best[verify] = min(times)
    cache_mod.FeatureCache.verify_checksums = True
    return best[True], best[False]


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["pixels", "effnet-lite0"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (alternating)")
    args = parser.parse_args()

    hashing = {"s": 0.0, "bytes": 0}
    real = cache_mod.file_checksum

    def timed_checksum(path):
        t0 = time.perf_counter()
        try:
            return real(path)
        finally:
            hashing["s"] += time.perf_counter() - t0
            hashing["bytes"] += os.path.getsize(path)

    cache_mod.file_checksum = timed_checksum
    with tempfile.TemporaryDirectory() as root:
        for model in args.models:
            run(model, root)  # fills the cache (and warms the page cache)
            times = {True: [], False: []}
            for _ in range(args.repeats):
                for verify in (True, False):
                    cache_mod.FeatureCache.verify_checksums = verify
                    hashing.update(s=0.0, bytes=0)
                    times[verify].append(run(model, root))
                    if verify:
                        hashed_s, hashed_bytes = hashing["s"], hashing["bytes"]
            on, off = statistics.median(times[True]), statistics.median(times[False])
            read_on, read_off = _read_path(f"{root}/cache")
            print(f"{model}: reading every cached entry, best of 10: {1000 * read_on:.1f} ms with checksums, "
                  f"{1000 * read_off:.1f} ms without: +{1000 * (read_on - read_off):.1f} ms = "
                  f"{100 * (read_on - read_off) / off:.2f}% of the run without verification")
            print(f"{model}: cached quick run --force, median of {args.repeats}: verify on {on:.2f} s, off {off:.2f} s "
                  f"({100 * (on - off) / off:+.1f}%); hashing {hashed_bytes / 2**20:.1f} MiB took {1000 * hashed_s:.1f} ms "
                  f"= {100 * hashed_s / on:.2f}% of the run; runs on {[round(t, 2) for t in times[True]]} "
                  f"off {[round(t, 2) for t in times[False]]}")


if __name__ == "__main__":
    main_bench()
