"""Faults: a full disk (a real small tmpfs where one can be mounted, else a write hook raising ENOSPC), kill -9 in
the middle of a split larger than one shard, and a lock left by a killed process."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import evalbench.cache as cache_mod
import evalbench.extract as extract_mod
from evalbench.cache import FeatureCache
from evalbench.cli import main
from evalbench.errors import DiskFullError
from evalbench.extract import extract_one

from _helpers import TinyEncoder

IDENTITY = {"source": "sklearn-digits", "pool": "all"}
TESTS = Path(__file__).parent


@contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` at `path`, or None where this process cannot mount one."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _enospc_in_result_writes(monkeypatch):
    """The fallback full disk for result files only: their atomic writes (cache.write_atomic) fail at fsync."""
    import evalbench.results as results_mod

    def failing(*args, **kwargs):
        with pytest.MonkeyPatch.context() as mp:
            _enospc_on_fsync(mp, cache_mod)
            return cache_mod.write_atomic(*args, **kwargs)

    monkeypatch.setattr(results_mod, "write_atomic", failing)


def _enospc_on_fsync(monkeypatch, module, after: int = 0):
    """The fallback full disk: the `after`+1-th fsync in `module` (only there) fails as a full disk does."""
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.fsync(fd)

    proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    proxy.fsync = fsync
    monkeypatch.setattr(module, "os", proxy)


def _debris(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".tmp-" in p.name or p.name.startswith(".evalbench-probe")]


def test_full_disk_during_extraction_keeps_finished_shards_and_resumes(tmp_path, digits_pool, monkeypatch):
    """4 shards fit, the assembled entry does not: one clear error, no temporary files, the shards kept; with space
    again the rerun encodes nothing and gives the features of an uninterrupted run."""
    monkeypatch.setattr(extract_mod, "SHARD_SIZE", 500)
    enc = TinyEncoder(dim=768)
    idx = np.arange(1797)
    reference = extract_one(enc, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "ref"))
    with small_disk(tmp_path / "disk", "7m") as disk:
        if disk is None:
            _enospc_on_fsync(monkeypatch, cache_mod, after=4)  # the four shards, then the entry fails
            disk = tmp_path / "disk"
        cache = FeatureCache(disk)
        with pytest.raises(DiskFullError) as info:
            extract_one(enc, digits_pool, idx, IDENTITY, cache)
        msg = str(info.value)
        assert msg.startswith(f"no space left in {cache.entry_dir(reference.key).parent}: cache entry ")
        assert f"needs {4 * 1797 * 768 + 128:,} bytes" in msg and "--cache-dir" in msg and "\n" not in msg
        assert _debris(disk) == []
        assert len(cache.completed_shards(reference.key)) == 4
        assert not cache.entry_dir(reference.key).exists()
        monkeypatch.setattr(cache_mod, "os", os)
        if os.path.ismount(disk):
            subprocess.run(["mount", "-o", "remount,size=32m", str(disk)], check=True)
        resumed = extract_one(enc, digits_pool, idx, IDENTITY, cache)
        assert resumed.extracted == 0
        assert np.array_equal(np.asarray(resumed.features), np.asarray(reference.features))
        assert _debris(disk) == [] and not cache.partial_dir(reference.key).exists()


def test_a_write_that_hits_enospc_midway_removes_its_temporary_file(tmp_path, digits_pool, monkeypatch):
    """Past the free-space check (another process filled the disk meanwhile): the write itself fails, as an
    error, never as SIGBUS (the entry is written with plain writes, not through a memory map)."""
    monkeypatch.setattr(cache_mod, "_ensure_space", lambda *a: None)
    with small_disk(tmp_path / "disk", "2m") as disk:
        if disk is None:
            _enospc_on_fsync(monkeypatch, cache_mod)
            disk = tmp_path / "disk"
        cache = FeatureCache(disk)
        with pytest.raises(DiskFullError, match=r"no space left in .*: feature shard 0-1797 of entry \w+ needs"):
            extract_one(TinyEncoder(dim=768), digits_pool, np.arange(1797), IDENTITY, cache)
        assert _debris(disk) == []
        assert not any(p.name.endswith(".partial") for p in disk.rglob("*"))


def test_full_disk_on_the_results_directory_is_one_line_and_keeps_the_features(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    with small_disk(tmp_path / "out", "256k") as out:
        if out is None:
            _enospc_in_result_writes(monkeypatch)
            out = tmp_path / "out"
        else:
            (out / "filler").write_bytes(b"\0" * (256 * 1024 - 4096))  # leave less than a result needs
            with pytest.raises(OSError):
                with open(out / "filler2", "wb") as f:
                    f.write(b"\0" * 65536)
            (out / "filler2").unlink()
        argv = ["run", "--model", "pixels:8", "--tasks", "digits", "--protocols", "knn", "--output", str(out),
                "--cache-dir", str(cache), "--no-progress"]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: no space left in {out / 'pixels-8' / 'digits'}: "), err
        assert "needs" in lines[0] and "bytes" in lines[0]
        assert _debris(out) == [] and not list(out.rglob("*.json"))
        assert len(list(cache.rglob("manifest.json"))) == 3  # every split's features were finished and kept
        if (out / "filler").exists():
            (out / "filler").unlink()
        else:
            import evalbench.results as results_mod

            monkeypatch.setattr(results_mod, "write_atomic", cache_mod.write_atomic)
        assert main(argv) == 0
        assert "0 samples extracted, 1797 reused" in " ".join(capsys.readouterr().out.split())


SLOW_EXTRACTION = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    import evalbench.extract as extract_mod
    from evalbench.cache import FeatureCache
    from evalbench.data.bundled import SklearnDigits
    from _helpers import TinyEncoder

    class Slow(TinyEncoder):
        def encode(self, x):
            time.sleep(0.05)
            return super().encode(x)

    extract_mod.SHARD_SIZE = 300
    pool = SklearnDigits().load()["all"]
    print("started", flush=True)
    extract_mod.extract_one(Slow(), pool, np.arange(1500), {"source": "sklearn-digits", "pool": "all"},
                            FeatureCache(sys.argv[1]), batch_size=30)
""")


def test_kill_9_inside_a_split_resumes_inside_it_with_identical_features(tmp_path, digits_pool, monkeypatch):
    monkeypatch.setattr(extract_mod, "SHARD_SIZE", 300)
    idx = np.arange(1500)
    reference = extract_one(TinyEncoder(), digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "ref"), batch_size=30)
    cache = FeatureCache(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EXTRACTION, str(cache.root), str(TESTS)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        deadline = time.time() + 120
        while len(cache.completed_shards(reference.key, verify=False)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(cache.completed_shards(reference.key))
    assert 2 <= done < 5 and not cache.entry_dir(reference.key).exists()
    resumed = extract_one(TinyEncoder(), digits_pool, idx, IDENTITY, cache, batch_size=64)
    assert resumed.extracted == 1500 - 300 * done  # resumed inside the split, not from its start
    assert np.array_equal(np.asarray(resumed.features), np.asarray(reference.features))
    assert _debris(cache.root) == [] and not cache.partial_dir(reference.key).exists()
    assert json.loads((cache.entry_dir(reference.key) / "manifest.json").read_text())["shape"] == [1500, 16]


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, digits_pool, monkeypatch):
    cache = FeatureCache(tmp_path)
    idx = np.arange(100)
    key = extract_one(TinyEncoder(), digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "other")).key
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); time.sleep(600)"), str(cache.lock(key).lock_file)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert cache.lock_path(key).exists()  # the lock file stays behind, as after any killed run
    monkeypatch.setattr(cache_mod, "LOCK_TIMEOUT_S", 20)  # blocked would mean an error after 20 s, not a hang
    t0 = time.perf_counter()
    got = extract_one(TinyEncoder(), digits_pool, idx, IDENTITY, cache)
    assert got.extracted == 100 and time.perf_counter() - t0 < 15


def test_a_live_lock_times_out_with_one_clear_line(tmp_path, digits_pool, monkeypatch):
    cache = FeatureCache(tmp_path)
    idx = np.arange(40)
    key = extract_one(TinyEncoder(), digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "other")).key
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); time.sleep(600)"), str(cache.lock(key).lock_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(cache_mod, "LOCK_TIMEOUT_S", 0.5)
        from evalbench.errors import EvalbenchError

        with pytest.raises(EvalbenchError, match="stayed locked by another evalbench process"):
            extract_one(TinyEncoder(), digits_pool, idx, IDENTITY, cache)
    finally:
        holder.kill()
        holder.wait()
