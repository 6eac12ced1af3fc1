"""`run --dry-run`: the plan and its cost, nothing computed; cached images are counted as cached."""
from __future__ import annotations

import re

from evalbench.cli import main


def _args(tmp_path, *extra):
    return ["run", "--model", "pixels:8", "--tasks", "digits", "--output", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--device", "cpu", *extra]


def test_dry_run_prints_the_plan_and_computes_nothing(tmp_path, capsys):
    assert main(_args(tmp_path, "--dry-run")) == 0
    out = capsys.readouterr().out
    # pixels:8 gives 8*8*3 = 192 float32 features: 1078 * 192 * 4 bytes = 827.9 KB
    assert "digits/train: 1078 images, 0 cached, 1078 to extract, 827.9 KB to write, about " in out
    assert "digits/test: 360 images, 0 cached, 360 to extract, 276.5 KB to write" in out
    assert "digits/linear: probe cost n x d x classes x fits = 1437 x 192 x 10 x 16 = 4.41e+07" in out
    assert "digits/knn: probe cost n x d x classes x fits = 1437 x 192 x 10 x 1 = " in out
    assert re.search(r"total: about [\d.]+ (s|min|h) of extraction, 1.4 MB to write; nothing was computed", out)
    assert not (tmp_path / "out").exists() and not list((tmp_path / "cache").glob("features/*/*"))


def test_dry_run_after_a_run_finds_everything_cached(tmp_path, capsys):
    assert main(_args(tmp_path)) == 0
    capsys.readouterr()
    assert main(_args(tmp_path, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "digits/train: 1078 images, 1078 cached, 0 to extract, 0 B to write" in out
    assert "total: about 0.0 s of extraction, 0 B to write" in out


def test_a_long_linear_probe_on_cpu_is_announced_before_it_runs(tmp_path, capsys, caplog, monkeypatch):
    import evalbench.runner as runner

    monkeypatch.setattr(runner, "ANNOUNCE_PROBE_S", 0.0)  # every C search counts as long
    assert main(_args(tmp_path, "--protocols", "linear")) == 0
    assert re.search(r"linear on CPU: n x d x classes x fits = 4\.41e\+07; roughly [\d.]+ h on this machine; "
                     r"--device cuda runs it on a GPU", caplog.text)


def test_decode_is_timed_on_one_thread_as_a_dataloader_worker_runs_it(tmp_path, monkeypatch):
    """Workers decode on one intra-op thread each; timing the decode on all of the main process's threads
    made the GPU estimate 3x too fast. In process (0 workers) the decode keeps the process's threads."""
    import torch

    import evalbench.dryrun as dryrun

    seen: list[int] = []
    real_per_image = dryrun.per_image

    class Recording:
        """The real per-image preprocess, noting the intra-op thread count each call runs with."""

        def __init__(self, preprocess):
            self.inner = real_per_image(preprocess)

        def __call__(self, batch):
            seen.append(torch.get_num_threads())
            return self.inner(batch)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(dryrun, "per_image", Recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for workers, expected in ((3, 1), (0, 2)):
            seen.clear()
            dryrun.dry_run("pixels:8", tasks=["digits"], cache_dir=tmp_path / "cache", device="cpu", num_workers=workers)
            assert seen and set(seen) == {expected}
            assert torch.get_num_threads() == 2  # restored after the timing
    finally:
        torch.set_num_threads(before)
