"""Cache integrity: checksums catch finite corruption; `evalbench cache verify|ls|du|prune` see and manage the cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import evalbench.extract as extract_mod
from evalbench.cache import CHECKSUM, DEBRIS_AGE_S, FeatureCache, file_checksum
from evalbench.cli import main
from evalbench.extract import extract_one

from _helpers import TinyEncoder

IDENTITY = {"source": "sklearn-digits", "pool": "all"}


def _flip_rows(path, rows=slice(0, 40)):
    """Flip the sign of some rows in place: every value stays finite, only a checksum can tell."""
    arr = np.load(path, mmap_mode="r+")
    arr[rows] *= -1
    arr.flush()
    del arr


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), out.err


def test_manifest_records_a_checksum_per_file(tmp_path, digits_pool, tiny_encoder):
    cache = FeatureCache(tmp_path)
    got = extract_one(tiny_encoder, digits_pool, np.arange(100), IDENTITY, cache)
    entry = cache.entry_dir(got.key)
    sums = json.loads((entry / "manifest.json").read_text())["checksums"]
    assert sums["algorithm"] == CHECKSUM == "xxh3_128"
    assert sums["features.npy"] == file_checksum(entry / "features.npy")
    assert sums["labels.npy"] == file_checksum(entry / "labels.npy")
    # the streamed file is an ordinary .npy file, identical to np.save of the same array
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(got.features))
    assert (entry / "features.npy").read_bytes() == buf.getvalue()


def test_sign_flipped_rows_are_detected_and_recomputed(tmp_path, digits_pool, tiny_encoder, caplog):
    cache = FeatureCache(tmp_path)
    idx = np.arange(300)
    first = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    good = np.asarray(first.features).copy()
    _flip_rows(cache.entry_dir(first.key) / "features.npy")
    again = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    assert again.extracted == 300 and np.array_equal(np.asarray(again.features), good)
    assert "checksum mismatch" in caplog.text and "recomputing" in caplog.text


@pytest.mark.parametrize("damage", ["labels", "manifest checksum", "no checksums", "manifest garbage"])
def test_other_damage_reads_as_a_miss(tmp_path, digits_pool, tiny_encoder, damage):
    cache = FeatureCache(tmp_path)
    idx = np.arange(80)
    first = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    entry = cache.entry_dir(first.key)
    manifest = json.loads((entry / "manifest.json").read_text())
    if damage == "labels":
        np.save(entry / "labels.npy", np.roll(digits_pool.labels[idx], 1))
    elif damage == "manifest checksum":
        manifest["checksums"]["features.npy"] = "0" * 32
        (entry / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "no checksums":  # an entry written before checksums existed
        del manifest["checksums"]
        (entry / "manifest.json").write_text(json.dumps(manifest))
    else:
        (entry / "manifest.json").write_text("{not json")
    assert cache.read(first.key, digits_pool.labels[idx]) is None
    again = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    assert again.extracted == 80 and np.array_equal(np.asarray(again.features), np.asarray(first.features))


def test_a_damaged_shard_is_extracted_again_on_resume(tmp_path, digits_pool, tiny_encoder, monkeypatch, caplog):
    monkeypatch.setattr(extract_mod, "SHARD_SIZE", 100)
    idx = np.arange(350)
    reference = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "ref"))
    cache = FeatureCache(tmp_path / "run")
    original, calls = FeatureCache.write_shard, {"n": 0}

    def stop_on_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FeatureCache, "write_shard", stop_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    monkeypatch.setattr(FeatureCache, "write_shard", original)
    shards = sorted(cache.partial_dir(reference.key).glob("shard-*.npy"))
    assert len(shards) == 2 and all(CHECKSUM and len(p.stem.split("-")[3]) == 32 for p in shards)
    _flip_rows(shards[0], slice(0, 5))
    resumed = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    assert resumed.extracted == 250  # the damaged shard and the two never written
    assert np.array_equal(np.asarray(resumed.features), np.asarray(reference.features))
    assert "damaged (checksum mismatch)" in caplog.text


def test_debris_of_a_killed_writer_is_removed_by_the_next_write(tmp_path, digits_pool, tiny_encoder):
    cache = FeatureCache(tmp_path)
    idx = np.arange(60)
    key = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "other")).key
    part = cache.partial_dir(key)
    part.mkdir(parents=True)
    debris = part / "shard-000000000-000000060-abc.npy.tmp-999999"
    debris.write_bytes(b"half a shard")
    old = time.time() - 2 * DEBRIS_AGE_S  # younger temporary files may be another rank's write in progress
    os.utime(debris, (old, old))
    in_flight = part / "shard-000000060-000000120-abc.npy.tmp-888888"
    in_flight.write_bytes(b"another rank's shard, being written")
    stale_entry = cache.entry_dir(key).with_name(f"{key}.tmp-999999")
    stale_entry.mkdir()
    (stale_entry / "features.npy").write_bytes(b"half an entry")
    cache.write_shard(key, 0, 60, np.zeros((60, 16), np.float32))
    assert not debris.exists() and in_flight.exists()  # a fresh temporary file may be another rank's write
    in_flight.unlink()
    extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    left = [p.name for p in cache.features_dir.rglob("*") if ".tmp-" in p.name]
    assert left == [] and not part.exists()


def test_cli_reports_a_corrupted_entry_and_keeps_metrics_exact(tmp_path, capsys, caplog):
    """The issue's reproduction: flipped rows used to give '0 extracted, 1797 reused' and a different k-NN score."""
    out, cache = tmp_path / "results", tmp_path / "cache"
    argv = ["run", "--model", "pixels:8", "--tasks", "digits", "--protocols", "knn", "--output", str(out),
            "--cache-dir", str(cache), "--no-progress"]
    assert _cli(argv, capsys)[0] == 0
    record = out / "pixels-8" / "digits" / "knn.json"
    metrics = json.loads(record.read_text())["metrics"]
    for f in cache.rglob("features.npy"):
        _flip_rows(f)
    code, text, _ = _cli(["cache", "verify", "--cache-dir", str(cache)], capsys)
    assert code == 1 and "3 damaged" in text and "checksum mismatch" in text and "cache verify --repair" in text
    code, text, _ = _cli([*argv, "--force"], capsys)
    assert code == 0 and "1797 samples extracted, 0 reused" in text
    assert json.loads(record.read_text())["metrics"] == metrics
    assert _cli(["cache", "verify", "--cache-dir", str(cache)], capsys)[0] == 0


def test_cache_verify_repair_ls_du(tmp_path, digits_pool, capsys):
    cache = FeatureCache(tmp_path)
    a = extract_one(TinyEncoder(seed=0), digits_pool, np.arange(200), IDENTITY, cache)
    b = extract_one(TinyEncoder(seed=1), digits_pool, np.arange(200), IDENTITY, cache)
    (cache.entry_dir(a.key).parent / f"{a.key}.tmp-424242").mkdir()  # debris of a killed process
    code, text, _ = _cli(["cache", "ls", "--cache-dir", str(tmp_path)], capsys)
    assert code == 0 and "tiny-16-0" in text and "tiny-16-1" in text and "200x16" in text and "debris" in text
    code, text, _ = _cli(["cache", "du", "--cache-dir", str(tmp_path)], capsys)
    assert code == 0 and "2 entries" in text and "1 temporary debris" in text and "tiny-16-1" in text
    _flip_rows(cache.entry_dir(b.key) / "features.npy")
    code, text, _ = _cli(["cache", "verify", "--cache-dir", str(tmp_path), "--repair"], capsys)
    assert code == 0 and "2 damaged, 2 removed" in text and f"removed: entry {cache.entry_dir(b.key)}" in text
    assert not cache.entry_dir(b.key).exists() and cache.entry_dir(a.key).exists()
    code, text, _ = _cli(["cache", "verify", "--cache-dir", str(tmp_path)], capsys)
    assert code == 0 and "verified 1 item(s)" in text and "0 damaged" in text


def test_cache_commands_on_a_missing_cache(tmp_path, capsys):
    for action in ("ls", "du", "verify", "prune"):
        code, text, err = _cli(["cache", action, "--cache-dir", str(tmp_path / "none")], capsys)
        assert code == 0 and not err
    assert not (tmp_path / "none").exists()


def test_cache_prune_by_age_model_and_dry_run(tmp_path, digits_pool, capsys):
    cache = FeatureCache(tmp_path)
    old = extract_one(TinyEncoder(seed=0), digits_pool, np.arange(50), IDENTITY, cache)
    new = extract_one(TinyEncoder(seed=1), digits_pool, np.arange(50), IDENTITY, cache)
    other = extract_one(TinyEncoder(seed=2, dim=8), digits_pool, np.arange(50), IDENTITY, cache)
    long_ago = time.time() - 40 * 86400
    os.utime(cache.entry_dir(old.key), (long_ago, long_ago))
    (cache.features_dir / "zz").mkdir()
    (cache.features_dir / "zz" / ("z" * 64 + ".lock")).write_bytes(b"")  # orphaned lock file
    code, text, _ = _cli(["cache", "prune", "--cache-dir", str(tmp_path), "--older-than", "30", "--dry-run"], capsys)
    assert code == 0 and "would remove entry" in text and "2 item(s)" in text and cache.entry_dir(old.key).exists()
    code, text, _ = _cli(["cache", "prune", "--cache-dir", str(tmp_path), "--older-than", "30"], capsys)
    assert code == 0 and "removed 2 item(s)" in text
    assert not cache.entry_dir(old.key).exists() and cache.entry_dir(new.key).exists()
    assert not cache.lock_path(old.key).exists()
    code, text, _ = _cli(["cache", "prune", "--cache-dir", str(tmp_path), "--model", "tiny-8-*"], capsys)
    assert code == 0 and "removed 1 item(s)" in text
    assert not cache.entry_dir(other.key).exists() and cache.entry_dir(new.key).exists()
    # a read counts as use: a freshly read entry is not old
    assert cache.read(new.key, digits_pool.labels[:50]) is not None
    assert time.time() - cache.entry_dir(new.key).stat().st_mtime < 60


def test_prune_keeps_an_entry_a_running_process_holds(tmp_path, digits_pool, capsys):
    cache = FeatureCache(tmp_path)
    got = extract_one(TinyEncoder(), digits_pool, np.arange(50), IDENTITY, cache)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); time.sleep(60)"), str(cache.lock_path(got.key))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, text, _ = _cli(["cache", "prune", "--cache-dir", str(tmp_path), "--all"], capsys)
        assert code == 0 and "removed 0 item(s)" in text and "1 in use" in text and cache.entry_dir(got.key).exists()
    finally:
        holder.kill()
        holder.wait()
    code, text, _ = _cli(["cache", "prune", "--cache-dir", str(tmp_path), "--all"], capsys)
    assert code == 0 and "removed 1 item(s)" in text and not cache.entry_dir(got.key).exists()
