"""Plots: few-shot curves from real records, group means, the forest plot of a comparison, and the missing-extra error."""
from __future__ import annotations

import struct
import sys
import textwrap

import pytest
from test_leaderboard import planted, write_record

from evalbench.cli import main
from evalbench.results import iter_results

GROUPS = {"n1": "natural", "n2": "natural", "s1": "specialized", "t1": "structured", "t2": "structured"}


def png_size(path) -> tuple[int, int]:
    """(width, height) from the PNG header, after checking the signature."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR"
    return struct.unpack(">II", blob[16:24])


def sensible(path, min_w=600, min_h=300) -> None:
    w, h = png_size(path)
    assert min_w <= w <= 2400 and min_h <= h <= 2400, (w, h)
    assert path.stat().st_size > 15_000  # drawn content, not an empty canvas


@pytest.fixture
def fewshot_results(tmp_path, monkeypatch):
    """Real few-shot records: pixels:8 and pixels:4 on digits with fewshot-linear at K = 1, 2, 5."""
    from evalbench.runner import evaluate
    from evalbench.tasks import _registry

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "digits-fewshot.yaml").write_text(textwrap.dedent("""
        name: digits-fewshot
        version: 1
        dataset: {source: sklearn-digits}
        splits:
          partition: {pool: all, seed: 0, sizes: {train: 0.6, val: 0.2, test: 0.2}}
        protocols:
          - {name: fewshot-linear, shots: [1, 2, 5]}
        """))
    monkeypatch.setenv("EVALBENCH_TASKS", str(tasks))
    _registry.cache_clear()
    for model in ("pixels:8", "pixels:4"):
        evaluate(model, tasks=["digits-fewshot"], output=tmp_path / "results", progress=False)
    return tmp_path / "results"


def test_fewshot_curves_from_real_records(fewshot_results, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "board" / "fs.md"
    assert main(["leaderboard", str(fewshot_results), "--plots", "-o", str(out)]) == 0
    v = iter_results([fewshot_results])[0].protocol.version  # the records carry the live protocol version
    png = tmp_path / "board" / f"fs.fewshot-linear-v{v}.png"
    assert f"and 1 plots: {png}" in " ".join(capsys.readouterr().out.split())
    sensible(png)
    text = out.read_text()
    assert f"## Plots\n\n![fewshot-linear (protocol v{v}): top1 vs shots per class](fs.fewshot-linear-v{v}.png)" in text
    assert f"## fewshot-linear-5shot (protocol v{v})" in text and "| n (test) | 360 |  |" in text


def test_group_means_plot_of_a_grouped_suite(tmp_path):
    pytest.importorskip("matplotlib")
    root = tmp_path / "results"
    for i, model in enumerate(("vit-s", "resnet-50", "pixels")):
        for task, group in GROUPS.items():
            y, pred = planted(n=400, wrong=30 + 60 * i + (50 if group == "structured" else 0))
            write_record(root, model, task, y, pred, interval="auto", group=group, suites=("mini-vtab",))
    write_record(root, "partial-model", "n1", *planted(n=400, wrong=100), interval="auto", group="natural", suites=("mini-vtab",))
    out = tmp_path / "vtab.md"
    assert main(["leaderboard", str(root), "--plots", "-o", str(out)]) == 0
    png = tmp_path / "vtab.mini-vtab-linear-protocol-v1.groups.png"
    sensible(png)
    text = out.read_text()
    assert "![mini-vtab: linear (protocol v1): group means](vtab.mini-vtab-linear-protocol-v1.groups.png)" in text
    assert "| partial-model | " in text and "(partial)" in text.split("| partial-model |")[1].split("\n")[0]


def test_forest_plot_of_a_paired_comparison(tmp_path):
    pytest.importorskip("matplotlib")
    from evalbench.compare import compare_runs
    from evalbench.plots import forest_plot

    root = tmp_path / "results"
    for task, differ in (("digits", 1), ("fashion", 60), ("cifar", 0)):
        y, a = planted(n=360, wrong=40)
        write_record(root, "a", task, y, a)
        write_record(root, "b", task, y, planted(n=360, wrong=40, differ=differ)[1])
        write_record(root, "b", task, y, planted(n=360, wrong=40, differ=differ)[1], protocol="knn")
        write_record(root, "a", task, y, planted(n=360, wrong=40, differ=3, start=200)[1], protocol="knn")
    records = iter_results([root])
    tasks, suites = compare_runs([r for r in records if r.model.name == "a"], [r for r in records if r.model.name == "b"])
    assert {t.verdict for t in tasks} == {"better", "not separable"}
    path = forest_plot(tasks, suites, tmp_path / "plots" / "forest.png", label_a="a", label_b="b")
    assert path == tmp_path / "plots" / "forest.png"
    w, h = png_size(path)
    assert w >= 1000 and 400 <= h <= 1400  # one row per comparison: 6 tasks and 2 suite means
    sensible(path)


def test_plots_without_matplotlib_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    write_record(tmp_path / "results", "a", "t1", *planted(), interval=(85.0, 92.0))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["leaderboard", str(tmp_path / "results"), "--plots", "-o", str(tmp_path / "lb.md")]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == "error: plots need matplotlib, which is not installed: pip install 'evalbench[plots]'"
    assert out == "" and not (tmp_path / "lb.md").exists()


def test_plots_need_an_output_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_record(tmp_path / "results", "a", "t1", *planted(), interval=(85.0, 92.0))
    assert main(["leaderboard", str(tmp_path / "results"), "--plots"]) == 2
    assert capsys.readouterr().err.strip() == "error: --plots writes PNG files beside the output file: pass -o FILE"
    assert main(["leaderboard", str(tmp_path / "results"), "--plots", "-o", str(tmp_path / "lb.md")]) == 0
    out = capsys.readouterr().out
    assert "--plots: nothing to plot here" in out and "## Plots" not in (tmp_path / "lb.md").read_text()
