"""torchrun extraction (gloo, CPU): 2 processes and 2 'nodes' on localhost give the features and metrics of one
process; shards left by some ranks resume under another rank count."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalbench.cache import FeatureCache
from evalbench.distributed import DistContext, resolve_device
from evalbench.errors import ConfigError, EvalbenchError
from evalbench.extract import extract_one

from _helpers import TinyEncoder

IDENTITY = {"source": "sklearn-digits", "pool": "all"}
RUN = ["-m", "evalbench", "run", "--model", "pixels", "--tasks", "digits", "--device", "cpu", "--num-workers", "0",
       "--no-progress", "--no-ci"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path) -> dict:
    # shards of 256 samples: digits' train split (1078) spreads over both ranks
    return {**os.environ, "EVALBENCH_SHARD_SIZE": "256", "OMP_NUM_THREADS": "1", "EVALBENCH_HOME": str(tmp_path / "home")}


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _features(cache: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(cache.glob("features/*/*/features.npy"))}


def _metrics(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())["metrics"] for p in sorted(out.glob("*/*/*.json"))}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    subprocess.run([sys.executable, *RUN, "--output", str(tmp / "out"), "--cache-dir", str(tmp / "cache")],
                   env=_env(tmp), check=True, capture_output=True, timeout=300)
    return _features(tmp / "cache"), _metrics(tmp / "out")


def _check_same(tmp_path: Path, single) -> None:
    feats, metrics = single
    got = _features(tmp_path / "cache")
    assert len(feats) == 3 and got.keys() == feats.keys()
    assert all(got[k] == feats[k] for k in feats)  # bit-identical features, every id once, in order
    assert _metrics(tmp_path / "out") == metrics
    assert not list((tmp_path / "cache").glob("features/*/*.partial"))


def test_torchrun_two_processes_match_one(tmp_path, single):
    cmd = _torchrun(["--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
                     *RUN, "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("evalbench results") == 1  # rank 0 reports, once
    _check_same(tmp_path, single)


def test_torchrun_two_nodes_on_localhost_match_one(tmp_path, single):
    port = _free_port()
    procs = [subprocess.Popen(_torchrun(["--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
                                         "--master-addr", "127.0.0.1", "--master-port", str(port),
                                         *RUN, "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]),
                              env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for node in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    _check_same(tmp_path, single)


class _FakeRank(DistContext):
    """A rank of a 2-process job whose process group is gone (as after a crash): no barrier, no broadcast."""

    def barrier(self) -> None:
        pass

    plan: dict = {}  # what rank 0 would have broadcast: {cache key: finished shards}

    def broadcast(self, obj):
        return self.plan


def test_shards_of_a_crashed_rank_resume_under_another_rank_count(tmp_path, digits_pool, monkeypatch):
    monkeypatch.setenv("EVALBENCH_SHARD_SIZE", "100")
    enc, idx = TinyEncoder(), np.arange(450)
    ref = extract_one(enc, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "ref"))
    cache = FeatureCache(tmp_path / "run")
    # rank 1 of 2 does its share (shards 2 and 4 of 5); rank 0 died, so nothing is committed
    monkeypatch.setattr(_FakeRank, "plan", {ref.key: []})
    with pytest.raises(EvalbenchError, match="cannot read cache entry"):
        extract_one(enc, digits_pool, idx, IDENTITY, cache, dist=_FakeRank(rank=1, world_size=2))
    assert sorted(cache.completed_shards(ref.key)) == [(100, 200), (300, 400)]
    resumed = extract_one(enc, digits_pool, idx, IDENTITY, cache)  # one process now
    assert resumed.extracted == 250
    assert np.asarray(resumed.features).tobytes() == np.asarray(ref.features).tobytes()


def test_my_ranges_cover_every_shard_once():
    ranges = [(s, s + 10) for s in range(0, 70, 10)]
    shares = [DistContext(r, 3).my_ranges(ranges) for r in range(3)]
    assert sorted(sum(shares, [])) == ranges and sum(len(s) for s in shares) == len(ranges)


def test_device_names():
    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    if not __import__("torch").cuda.is_available():
        assert str(resolve_device("auto")) == "cpu"
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
