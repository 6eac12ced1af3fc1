"""The `evalbench` command line: a thin argparse layer over the public API, with rich output."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import EvalbenchError, describe_exception

EXAMPLES = """examples:
  evalbench run --model effnet-lite0 --suite quick
  evalbench run --model pixels --suite quick
  evalbench run --model torchvision:resnet50 --tasks digits fashion-mnist-mini
  evalbench run --model ckpt.pth --arch resnet50 --suite quick
  evalbench run --model pixels --dataset ./my_images          (your own data: folder, list:FILE.csv, hf:ID)
  evalbench run --model pixels --suite quick --protocols linear ridge fewshot-linear --shots 1,5,10
  evalbench leaderboard results -o leaderboards/quick.md
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: evalbench run: argument --batch-size: ...` and exit code 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _number(text: str, kind, what: str, ok, example: str):
    """Parse `text` as `kind` and check it with `ok`, else a one-line argparse error saying what is expected."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r} (e.g. {example})") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text} (e.g. {example})")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, "a positive integer", lambda v: v > 0, "64")


def _non_negative_int(text: str) -> int:
    return _number(text, int, "a non-negative integer", lambda v: v >= 0, "0")


def _crop_pct(text: str) -> float:
    return _number(text, float, "a fraction in (0, 1]", lambda v: 0 < v <= 1, "0.875")


def _days(text: str) -> float:
    return _number(text, float, "a number of days >= 0", lambda v: v >= 0 and math.isfinite(v), "30")


def _floats3(text: str, positive: bool = False) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        parts = []
    if len(parts) != 3 or not all(math.isfinite(x) for x in parts):
        raise argparse.ArgumentTypeError(f"expected 3 numbers like 0.485,0.456,0.406, got {text!r}")
    if positive and min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected 3 positive numbers like 0.229,0.224,0.225, got {text!r}")
    return tuple(parts)  # type: ignore[return-value]


def _std3(text: str) -> tuple[float, float, float]:
    return _floats3(text, positive=True)


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level like 0.95, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"the level must lie strictly between 0 and 1, got {value}")
    return value


def _shots(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected shot counts like 1,5,10, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive shot counts like 1,5,10, got {text!r}")
    return values


def _protocol_options(args) -> dict:
    """The few-shot / episodic settings given on the command line (evalbench.tasks.PROTOCOL_OPTIONS)."""
    shots = [k for group in (args.shots or []) for k in group] or None
    return {"shots": sorted(set(shots)) if shots else None, "fewshot_seeds": args.fewshot_seeds,
            "episodes": args.episodes, "ways": args.ways}


def _add_protocol_options(group) -> None:
    group.add_argument("--shots", type=_shots, nargs="+", metavar="K",
                       help="examples per class for fewshot-linear, fewshot-knn and the episodic protocols, e.g. 1,5,10 "
                       "(one result per K: fewshot-linear-5shot, ...)")
    group.add_argument("--fewshot-seeds", type=_positive_int, metavar="N", help="sampling tries of the few-shot protocols (default 5)")
    group.add_argument("--episodes", type=_positive_int, metavar="N", help="episodes of the episodic protocols (default 2000)")
    group.add_argument("--ways", type=_positive_int, metavar="N", help="classes per episode of the episodic protocols (default 5)")


def _split_list(values: Optional[list[str]]) -> Optional[list[str]]:
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evalbench", description="Evaluate frozen pretrained encoders: features are extracted once into a cache, "
        "then standard protocols (linear probe, k-NN) run on them and results are written as JSON.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"evalbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help="on an error, print the full traceback (also after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate a model on a suite or tasks", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Evaluate one encoder. Finished (model, task, protocol) results are kept and not "
                         "recomputed on a rerun, so an interrupted run resumes where it stopped.")
    m = run.add_argument_group("model")
    m.add_argument("--model", required=True, metavar="SPEC",
                   help="pixels[:SIZE] | effnet-lite0 (alias demo) | torchvision:ARCH | timm:NAME[.TAG] | hf:ID (hub id or local dir) | "
                   "PATH (.pt/.pth/.pth.tar/.safetensors research checkpoint, with --arch) | package.module:attr | an entry-point name")
    m.add_argument("--arch", help="architecture for a checkpoint PATH: a torchvision name (resnet50) or timm:NAME")
    m.add_argument("--weights", help="torchvision weights tag (default: DEFAULT), e.g. IMAGENET1K_V1; for hf:ID a hub revision")
    m.add_argument("--random-init", action="store_true", help="evaluate the untrained architecture on purpose (torchvision:ARCH, timm:NAME)")
    m.add_argument("--checkpoint-key", metavar="KEY",
                   help="take the state dict from this checkpoint key (dotted for nesting), e.g. student for a DINO checkpoint")
    m.add_argument("--trust-checkpoint", action="store_true",
                   help="load a checkpoint with weights_only=False: code inside it can run; only for files you trust (recorded)")
    m.add_argument("--name", help="name for results and leaderboards (default: derived from the model)")
    m.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip conv-BN fusion and channels_last")
    f = run.add_argument_group("features (default: the model's own pooling)")
    f.add_argument("--layer", help="intermediate layer: blocks.N on ViTs, a module name (layer3, stages.2) on CNNs")
    f.add_argument("--pool", help="ViT: cls, mean, cls+mean, lastN, lastN+avg (e.g. last4); CNN: avg; hf: pooled; "
                   "comma-separate several to extract them in one pass (each cached and reported separately)")
    f.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="extraction precision (autocast); default fp32, "
                   "reduced precision is much slower on most CPUs")
    p = run.add_argument_group("preprocessing overrides (default: the model's own)")
    p.add_argument("--input-size", type=_positive_int, help="crop size fed to the model")
    p.add_argument("--crop-pct", type=_crop_pct, help="input size / resize size, in (0, 1] (e.g. 0.875)")
    p.add_argument("--resize", type=_positive_int, help="shorter side before the centre crop (instead of --crop-pct)")
    p.add_argument("--interpolation", choices=["bilinear", "bicubic", "nearest"])
    p.add_argument("--mean", type=_floats3, help="three numbers, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_std3, help="three positive numbers, e.g. 0.229,0.224,0.225")
    w = run.add_argument_group("what to run")
    w.add_argument("--suite", help="a suite name (see `evalbench suites`)")
    w.add_argument("--tasks", nargs="+", metavar="TASK", help="task names (space or comma separated); narrows --suite")
    w.add_argument("--dataset", nargs="+", metavar="SPEC",
                   help="your own data as an ad-hoc task: an image folder (ROOT/<split>/<class>/<image> or ROOT/<class>/<image>), "
                   "list:FILE.csv (path, label, optional split columns), hf:ID[:CONFIG][@REVISION], hf:DIR (save_to_disk or local files)")
    w.add_argument("--task-name", help="name of the --dataset task (default: data-<folder, file or id name>)")
    w.add_argument("--protocols", nargs="+", metavar="ID",
                   help="protocols to run: the task's ids (linear, knn) or any registered protocol (ridge, fewshot-linear, "
                   "fewshot-knn, episodic-centroid, episodic-logreg), on any task")
    _add_protocol_options(w)
    w.add_argument("--seed", type=_non_negative_int, default=0, help="seed for every random choice in the protocols (default 0)")
    w.add_argument("--force", action="store_true", help="recompute results that already exist (features still come from the cache)")
    w.add_argument("--allow-missing", action="store_true",
                   help="score the tasks whose data is here and skip the rest (suite means are then marked partial)")
    io = run.add_argument_group("files")
    io.add_argument("--output", default="results", help="results directory (default: results)")
    io.add_argument("--cache-dir", help="feature cache (default: $EVALBENCH_HOME/cache, else $XDG_CACHE_HOME/evalbench)")
    io.add_argument("--data-root", help="where non-bundled datasets live (default: $EVALBENCH_DATA)")
    io.add_argument("--batch-size", type=_positive_int, default=64, help="extraction batch size (default 64)")
    io.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    io.add_argument("--reference", metavar="DIR", help="after the run, check each result against the record of the same "
                    "model, task and protocol under DIR (e.g. the committed results/) and say which numbers differ")
    io.add_argument("--no-ci", dest="ci", action="store_false", help="show point estimates without their 95%% intervals")
    sc = run.add_argument_group("scale (multi-GPU: torchrun --nproc-per-node N -m evalbench run ...)")
    sc.add_argument("--num-workers", type=int, metavar="N",
                    help="DataLoader workers that read and preprocess images (default: CPU cores - 1, at most 8; "
                         "0 on 2 cores or fewer; 0 = in process). Features do not depend on it")
    sc.add_argument("--device", help="auto (default: CUDA when available), cpu, cuda or cuda:N, for extraction and the "
                                     "probes that take a device (linear); under torchrun each rank uses its local GPU")
    sc.add_argument("--dry-run", action="store_true", help="print the plan (images to extract vs cached, bytes to write, "
                                                           "estimated extraction time from one timed batch, probe cost) "
                                                           "and exit without computing")

    lb = sub.add_parser("leaderboard", help="render leaderboards (markdown, csv, parquet) from result files",
                        description="One table per protocol, one row per model: values with the half-width of their 95% "
                        "interval, the best model and those not separable from it in bold, unconverged fits marked.")
    lb.add_argument("results", nargs="*", default=["results"], help="results directories (default: results)")
    lb.add_argument("-o", "--output", help="write here (default: print it; parquet and --plots need a file)")
    lb.add_argument("--metric", default="top1", help="metric to rank by (default top1)")
    lb.add_argument("--title", default="evalbench leaderboard")
    lb.add_argument("--format", choices=["md", "csv", "parquet"], default="md",
                    help="md (default); csv or parquet: one tidy row per (table, model, task column)")
    lb.add_argument("--no-ci", dest="ci", action="store_false", help="values without the ± half-width of their interval")
    lb.add_argument("--plots", action="store_true", help="also write PNG plots beside the output file (few-shot curves, "
                    "group means); needs matplotlib: pip install 'evalbench[plots]'")
    lb.add_argument("--strict", action="store_true", help="JSON files that are not readable result records (and unreadable "
                    "predictions) are an error (exit 2) instead of a warning")

    cmp = sub.add_parser("compare", help="paired comparison of runs on the same test items",
                         description="Compare A against B (and C, ...) item by item, as A - B: per task the top-1 difference "
                         "with its paired-bootstrap 95%% CI, an exact McNemar p-value (Wilcoxon signed-rank for few-shot "
                         "and episodic runs), a Holm-corrected verdict across each protocol's tasks, and the difference "
                         "of suite means with its CI.")
    cmp.add_argument("runs", nargs="+", metavar="RUN", help="a model's results directory (results/MODEL) or a model name")
    cmp.add_argument("--results", default="results", help="where model names are looked up (default: results)")
    cmp.add_argument("--bootstrap", type=_positive_int, default=2000, metavar="B", help="bootstrap draws (default 2000)")
    cmp.add_argument("--seed", type=_non_negative_int, default=0, help="bootstrap seed (default 0)")
    cmp.add_argument("--plot", metavar="FILE", help="also draw a forest plot of the differences (PNG; needs matplotlib)")

    rs = sub.add_parser("rescore", help="recompute metrics and intervals from stored predictions (no features needed)")
    rs.add_argument("results", nargs="*", default=["results"], help="results directories (default: results)")
    rs.add_argument("--bootstrap", type=_positive_int, default=2000, metavar="B", help="bootstrap draws (default 2000)")
    rs.add_argument("--level", type=_level, default=0.95, help="interval level (default 0.95)")
    _add_cache_parser(sub)

    data = sub.add_parser("data", help="where each task's data is (status) and how to get it (prepare)")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    st = data_sub.add_parser("status", help="vtab: per task data route, split variant, counts, class coverage; "
                             "a dataset SPEC: its layout, splits, classes and counts")
    st.add_argument("suite", metavar="vtab|SPEC", help="vtab, or your own data as for run --dataset (folder, list:FILE, hf:ID)")
    st.add_argument("--data-root", help="where datasets live (default: $EVALBENCH_DATA)")
    st.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (vtab-cifar100 or the export folder name cifar)")
    pr = data_sub.add_parser("prepare", help="download what can be downloaded; print the manual steps for the rest")
    pr.add_argument("suite", choices=["vtab"], help="the suite to prepare")
    pr.add_argument("--root", required=True, help="the data root to fill (then pass it as --data-root or $EVALBENCH_DATA)")
    pr.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (vtab-cifar100 or the export folder name cifar)")

    tk = sub.add_parser("tasks", help="list registered tasks, their data and protocols (plain tab-separated lines when piped)")
    tk.add_argument("--data-root", help="where non-bundled datasets live (default: $EVALBENCH_DATA)")
    tk.add_argument("--suite", help="only the tasks of this suite")
    tk.add_argument("--json", action="store_true", help="one JSON list of tasks (full names, options, splits, data)")

    task = sub.add_parser("task", help="make task files (task new NAME --dataset SPEC)")
    task_sub = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    tn = task_sub.add_parser("new", help="write the task YAML a --dataset SPEC runs as, to edit and share",
                             description="Write DIR/NAME.yaml (DIR: --dir, else the first $EVALBENCH_TASKS entry): the "
                             "task `evalbench run --dataset SPEC` would run, named NAME.")
    tn.add_argument("name", metavar="NAME", help="the task's name")
    tn.add_argument("--dataset", required=True, metavar="SPEC", help="as for run --dataset")
    tn.add_argument("--dir", help="where to write it (default: the first $EVALBENCH_TASKS entry)")
    tn.add_argument("--protocols", nargs="+", metavar="NAME", help="protocols to list (default: linear knn)")
    _add_protocol_options(tn)
    tn.add_argument("--data-root", help="where relative dataset paths are looked for (default: $EVALBENCH_DATA)")
    tn.add_argument("--force", action="store_true", help="replace an existing file")
    sub.add_parser("suites", help="list suites and their tasks")
    return parser


def _cmd_run(args, console) -> int:
    from rich.table import Table

    from .leaderboard import format_metric
    from .errors import ConfigError
    from .runner import RunSummary, evaluate

    if args.num_workers is not None and args.num_workers < 0:
        raise ConfigError(f"--num-workers {args.num_workers}: must be 0 or more")
    if args.reference and not Path(args.reference).is_dir():  # checked now, not after the run
        raise EvalbenchError(f"--reference {args.reference} is not a directory; pass a results directory such as results")
    summary = RunSummary()
    model_options = {k: getattr(args, k) for k in ("arch", "weights", "random_init", "input_size", "crop_pct",
                                                    "interpolation", "mean", "std", "optimize", "resize",
                                                    "checkpoint_key", "trust_checkpoint", "layer", "pool", "dtype")}
    if args.dry_run:
        return _dry_run(args, model_options, console)
    df = evaluate(args.model, suite=args.suite, tasks=_split_list(args.tasks), output=args.output,
                  cache_dir=args.cache_dir, data_root=args.data_root, protocols=_split_list(args.protocols),
                  batch_size=args.batch_size, seed=args.seed, force=args.force, name=args.name,
                  progress=args.progress, console=console, summary=summary, allow_missing=args.allow_missing,
                  dataset=args.dataset, task_name=args.task_name, protocol_options=_protocol_options(args),
                  num_workers=args.num_workers, device=args.device,
                  report_every=None if sys.stderr.isatty() else 30.0, **model_options)
    if summary.rank != 0:  # torchrun: rank 0 reports
        return 0
    models = list(dict.fromkeys(df["model"])) if len(df) else [args.model]
    # several feature choices (--pool a,b) give several models: then each row names its own
    lead = ["model"] if len(models) > 1 else []
    table = Table(title=f"evalbench results: {', '.join(models)}")
    for col in (*lead, "task", "protocol", "n (test)", "top1", "top5", "mean per class", "status"):
        table.add_column(col, justify="right" if col in ("n (test)", "top1", "top5", "mean per class") else "left")
    unconverged = []
    for _, r in df.iterrows():
        top1 = format_metric(r["top1"], r["top1_ci"] if args.ci else None)
        if r["converged"] is False:
            top1 += " †"
            unconverged.append(f"{r['task']}/{r['protocol']}")
        table.add_row(*[r[c] for c in lead], r["task"], r["protocol"], str(r["n_test"] or "–"), top1, format_metric(r["top5"]),
                      format_metric(r["mean_per_class"], r["mean_per_class_ci"] if args.ci else None), r["status"])
    console.print(table)
    if args.ci:
        console.print("± : half-width of the 95% interval (bootstrap over test items; few-shot and episodic: over "
                      "seeds or episodes)", highlight=False)
    if unconverged:
        console.print(f"[yellow]warning:[/] † the final fit stopped before its tolerance in {', '.join(unconverged)}; "
                      "see details.final_fit in the result (stop reason, gradient)", highlight=False, soft_wrap=True)
    for note in summary.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    _print_suite_means(args, df, summary, console)
    if args.reference:
        _print_reference_check(df, Path(args.reference), console)
    console.print(f"features: {summary.extracted} samples extracted, {summary.reused} reused from the cache; "
                  f"results: {len(summary.computed)} computed, {len(summary.skipped)} already up to date; written under {args.output}/")
    return 0


def _dry_run(args, model_options: dict, console) -> int:
    """`run --dry-run`: the plan and its cost, one plain line per split and protocol; nothing computed."""
    from .dryrun import dry_run, format_rows, matmul_flops_per_s

    rows = dry_run(args.model, suite=args.suite, tasks=_split_list(args.tasks), cache_dir=args.cache_dir,
                   data_root=args.data_root, protocols=_split_list(args.protocols), batch_size=args.batch_size,
                   device=args.device, allow_missing=args.allow_missing, dataset=args.dataset, task_name=args.task_name,
                   protocol_options=_protocol_options(args), name=args.name, **model_options)
    for line in format_rows(rows, matmul_flops_per_s(args.device)):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    return 0


def _print_reference_check(df, reference: Path, console) -> None:
    """Compare each result of this run with the reference record at the same relative path."""
    from .results import read_result

    same, differ, absent = 0, [], []
    for path, rel in ((Path(p), Path(p).relative_to(Path(p).parents[2])) for p in df["path"]):
        mine, ref = read_result(path), read_result(reference / rel)
        if ref is None:
            absent.append(str(rel))
        elif ref.metrics == mine.metrics and ref.protocol.params == mine.protocol.params:
            same += 1
        else:
            keys = sorted(k for k in set(ref.metrics) | set(mine.metrics) if ref.metrics.get(k) != mine.metrics.get(k))
            differ.append(f"{rel} ({', '.join(f'{k}: {mine.metrics.get(k)} vs {ref.metrics.get(k)}' for k in keys[:3]) or 'settings'})")
    line = f"reference check against {reference}/: {same} of {len(df)} results equal the reference exactly"
    console.print(f"[green]{line}[/]" if same == len(df) else line, highlight=False, soft_wrap=True)
    if differ:
        console.print(f"[yellow]differ:[/] {'; '.join(differ)}", highlight=False, soft_wrap=True)
    if absent:
        console.print(f"not in the reference: {', '.join(absent)}", highlight=False, soft_wrap=True)


def _print_suite_means(args, df, summary, console) -> None:
    """Suite and group means after a run over a grouped suite (VTAB), partial when tasks were skipped."""
    from .leaderboard import group_summary, suite_task_groups
    from .tasks import list_tasks

    if summary.missing:
        console.print(f"[yellow]skipped for lack of data ({len(summary.missing)}):[/] {', '.join(summary.missing)}")
    tasks = list_tasks()
    groups = suite_task_groups(tasks.values()).get(args.suite or "")
    if not groups and args.suite and len(df) > 1:  # an ungrouped suite: the mean over its tasks
        groups = {name: "" for name, t in tasks.items() if args.suite in t.suites}
    if groups and len(df):
        for line in group_summary(df.to_dict("records"), groups):
            console.print(f"{args.suite} {line}")


def _leaderboard_preflight(args, out: Optional[Path]) -> None:
    """Refuse what cannot work before reading any result: plots or parquet without a file or their package."""
    if args.plots:
        from .plots import require_matplotlib

        require_matplotlib()
        if out is None:
            raise EvalbenchError("--plots writes PNG files beside the output file: pass -o FILE")
    if args.format == "parquet":
        from .leaderboard import require_pyarrow

        require_pyarrow()
        if out is None:
            raise EvalbenchError("--format parquet writes a binary file: pass -o FILE.parquet")


def _leaderboard_warn(problems: list[str], what: str, strict: bool) -> None:
    """One warning line listing the problems on stderr; an error under --strict."""
    if not problems:
        return
    text = f"{len(problems)} {what}: " + "; ".join(problems)
    if strict:
        raise EvalbenchError(text + " (--strict)")
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _cmd_leaderboard(args, console) -> int:
    from .leaderboard import build_leaderboard, load_records, suite_task_groups, write_frame
    from .tasks import list_tasks

    out = Path(args.output) if args.output else None
    _leaderboard_preflight(args, out)
    records, skipped = load_records(args.results)
    _leaderboard_warn(skipped, "JSON files skipped: not readable evalbench result records", args.strict)
    board = build_leaderboard(records, args.metric, suite_task_groups(list_tasks().values()))
    _leaderboard_warn(board.warnings, "stored predictions unusable", args.strict)
    images = []
    if args.plots:
        from .plots import write_leaderboard_plots

        images = write_leaderboard_plots(board.frame(), out)
        if not images:
            console.print("--plots: nothing to plot here (plots need few-shot K-shot protocols or a grouped suite)",
                          markup=False, highlight=False, soft_wrap=True)
    if args.format != "md":
        text = write_frame(board.frame(), out, args.format)
    else:
        text = board.markdown(args.results, args.title, ci=args.ci, images=[(c, p.name) for c, p in images])
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
    if out is None:
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        plots = f" and {len(images)} plots: " + ", ".join(str(p) for _, p in images) if images else ""
        console.print(f"wrote {out} from {len(records)} result records{plots}", markup=False, highlight=False, soft_wrap=True)
    return 0


def _data_state(source) -> tuple[Optional[str], str]:
    """(where the data is, or None; what happens when it is not there), as the run would behave."""
    where = source.locate()
    if where:
        return where, "available"
    downloads = getattr(source, "download", False) or any(getattr(s, "download", False) and getattr(s, "supported", True)
                                                            for _, s in getattr(source, "candidates", []))
    if downloads:
        return None, "not found (downloaded on first run when online)"
    if getattr(source, "candidates", None) is not None:  # VTAB: nothing is downloaded by a run
        return None, "not found (the run refuses; `evalbench data status vtab` / `evalbench data prepare vtab --root DIR`)"
    return None, "not found (the run refuses)"


def _task_rows(args) -> list[dict]:
    from .data import make_source
    from .tasks import list_suites, list_tasks

    tasks = list_tasks()
    if args.suite is not None:
        suites = list_suites()
        if args.suite not in suites:
            from .errors import UnknownNameError

            raise UnknownNameError("suite", args.suite, suites, hint="`evalbench suites` lists them")
        tasks = {n: tasks[n] for n in suites[args.suite]}
    rows = []
    for name, t in tasks.items():
        where, state = _data_state(make_source(t.source, t.source_options, data_root=args.data_root))
        if "partition" in t.splits:
            p = t.splits["partition"]
            splits = f"{p['pool']} -> " + "/".join(f"{k} {v}" for k, v in p["sizes"].items()) + f" (seed {p.get('seed', 0)})"
        else:
            splits = ", ".join(f"{k}={v['pool']}" + (f"[{v['size']}]" if v.get("size") else "") for k, v in t.splits.items())
        rows.append({"task": name, "version": t.version, "suites": list(t.suites), "group": t.group or None,
                     "dataset": {"source": t.source, **t.source_options}, "splits": splits,
                     "protocols": [e.id for e in t.protocols], "data": state, "where": where, "file": t.path})
    return rows


def _cmd_tasks(args, console) -> int:
    import json

    rows = _task_rows(args)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    def dataset(r):
        opts = {k: v for k, v in r["dataset"].items() if k != "source"}
        return f"{r['dataset']['source']}:{opts.get('name') or opts.get('task') or next(iter(opts.values()), r['task'])}"

    if not sys.stdout.isatty():  # piped: one full line per task, tab-separated, never cut
        print("\t".join(("task", "suites", "dataset", "splits", "protocols", "data")))
        for r in rows:
            print("\t".join((r["task"], ",".join(r["suites"]), dataset(r), r["splits"], ", ".join(r["protocols"]),
                             f"{r['data']} ({r['where']})" if r["where"] else r["data"])))
        return 0
    from rich.table import Table

    table = Table(title="evalbench tasks")
    table.add_column("task", no_wrap=True)
    for col in ("suites", "dataset", "splits", "protocols", "data"):
        table.add_column(col)
    for r in rows:
        data = f"[green]available[/] ({r['where']})" if r["where"] else f"[yellow]{r['data']}[/]"
        table.add_row(r["task"], ",".join(r["suites"]), dataset(r), r["splits"], ", ".join(r["protocols"]), data)
    console.print(table)
    return 0


def _vtab_folders(names: Optional[list[str]]) -> Optional[list[str]]:
    """Export folder names (cifar) for the names given: folder names, or the task names `run` uses (vtab-cifar100)."""
    from .data.vtab.tasks import VTAB_TASKS
    from .errors import UnknownNameError
    from .tasks import list_tasks

    if not names:
        return None
    by_task = {n: t.source_options.get("task") for n, t in list_tasks().items() if t.source == "vtab"}
    out = []
    for name in names:
        folder = name if name in VTAB_TASKS else by_task.get(name)
        if folder not in VTAB_TASKS:
            raise UnknownNameError("VTAB task", name, [*VTAB_TASKS, *by_task])
        out.append(folder)
    return list(dict.fromkeys(out))


def _cmd_own_data_status(args, console) -> int:
    """`data status SPEC`: what a --dataset SPEC holds, as the run would read it."""
    import numpy as np

    from .data import make_source
    from .data.spec import parse_dataset_spec
    from .tasks import default_splits

    kind, options, name = parse_dataset_spec(args.suite, args.data_root)
    source = make_source(kind, options, data_root=args.data_root)
    pools = source.load()
    ident = source.identity()
    classes = ident.get("classes") or next(iter(pools.values())).classes
    _, note = default_splits(list(pools), args.suite)
    console.print(f"{args.suite}: source {kind}, task name {name}; {source.locate()}", highlight=False, soft_wrap=True)
    console.print(f"classes ({len(classes)}, {ident.get('class_index', '')}): {', '.join(map(str, classes[:20]))}"
                  + (" ..." if len(classes) > 20 else ""), highlight=False, soft_wrap=True)
    for pool, p in pools.items():
        present = len(np.unique(p.labels))
        console.print(f"  {pool}: {len(p)} images, {present}/{len(classes)} classes", highlight=False)
    console.print(f"splits for run --dataset: {note}", highlight=False, soft_wrap=True)
    return 0


def _cmd_data(args, console) -> int:
    from rich.table import Table

    from .data.vtab import prepare, status_rows

    if args.data_command == "status" and args.suite != "vtab":
        return _cmd_own_data_status(args, console)
    tasks = _vtab_folders(_split_list(args.tasks))
    if args.data_command == "prepare":
        for line in prepare(args.root, tasks):
            console.print(line, highlight=False, soft_wrap=True)
        return 0
    table = Table(title="VTAB-1k data")
    for col in ("task", "group", "route", "split variant", "counts", "classes covered", "where / notes"):
        table.add_column(col)
    warnings = 0
    for r in status_rows(args.data_root, tasks):
        counts = ", ".join(f"{k} {v}" for k, v in r["counts"].items())
        cover = ", ".join(f"{k} {v}/{r['classes']}" for k, v in r["coverage"].items())
        notes = [r["where"]] if r["where"] else []
        notes += [f"[yellow]warning:[/] {w}" for w in r["warnings"]]
        warnings += len(r["warnings"])
        if r["route"] is None:
            notes.append(f"source route: {r['source_route']}")
        table.add_row(r["task"], r["group"], r["route"] or "[red]missing[/]", r["variant"] or "–", counts, cover, "\n".join(notes))
    console.print(table)
    from .data.vtab.export import LAYOUT

    console.print(f"{warnings} warning(s). Community export layout: {LAYOUT} (<root> = --data-root or $EVALBENCH_DATA). "
                  "`evalbench data prepare vtab --root DIR` downloads what it can and prints the manual steps.",
                  highlight=False, soft_wrap=True)
    return 0


def _cmd_task(args, console) -> int:
    from .protocols import get_protocol
    from .tasks import _expand_protocols, _overrides, dataset_task_mapping, write_task_yaml

    options = _protocol_options(args)
    items = [{"name": p, **extra} if (extra := _overrides(p, options)) else p for p in _split_list(args.protocols) or []]
    for entry in _expand_protocols(items, "--protocols") if items else ():
        get_protocol(entry.name, entry.params)  # unknown names and bad values: one line, before writing
    mapping = dataset_task_mapping(args.dataset, args.name, args.data_root, items or None)
    path = write_task_yaml(mapping, args.dir, force=args.force)
    console.print(f"wrote {path}; run it with: evalbench run --model MODEL --tasks {args.name}"
                  + ("" if args.dir is None else f" (with {Path(args.dir).expanduser()} in $EVALBENCH_TASKS)"),
                  highlight=False, soft_wrap=True)
    return 0


def _cmd_compare(args, console) -> int:
    from rich.table import Table

    from .compare import compare_runs, load_run

    if len(args.runs) < 2:
        raise EvalbenchError("compare needs at least two runs: evalbench compare A B [C ...]")
    base = load_run(args.runs[0], args.results)
    for other_spec in args.runs[1:]:
        other = load_run(other_spec, args.results)
        rows, suites = compare_runs(base, other, B=args.bootstrap, seed=args.seed)
        a, b = base[0].model.name, other[0].model.name
        table = Table(title=f"A = {a}, B = {b}: A - B on the same test items (positive: A is better)")
        for col in ("task", "protocol", "n", "top1 A", "top1 B", "A - B [95% CI]", "test", "p", "p (Holm)", "verdict"):
            table.add_column(col, justify="left" if col in ("task", "protocol", "test", "verdict") else "right")
        for r in rows:
            table.add_row(r.task, r.protocol, str(r.n), f"{r.top1_a:.2f}", f"{r.top1_b:.2f}",
                          f"{r.diff.estimate:+.2f} [{r.diff.low:+.2f}, {r.diff.high:+.2f}]", r.test,
                          f"{r.p_value:.3g}", f"{r.p_holm:.3g}", r.verdict)
        console.print(table)
        for s in suites:
            console.print(f"{s.protocol}: mean over {s.tasks} tasks, {a} - {b} = {s.diff.estimate:+.2f} "
                          f"[{s.diff.low:+.2f}, {s.diff.high:+.2f}] (paired bootstrap within tasks, B={args.bootstrap})",
                          highlight=False)
        if args.plot:
            from .plots import forest_plot

            path = Path(args.plot) if len(args.runs) == 2 else Path(args.plot).with_stem(f"{Path(args.plot).stem}-{other_spec}")
            forest_plot(rows, suites, path, label_a=a, label_b=b)
            console.print(f"wrote {path}")
    return 0


def _cmd_rescore(args, console) -> int:
    from rich.table import Table

    from .results import iter_results
    from .scoring import intervals, metrics_from_predictions

    table = Table(title="metrics recomputed from stored predictions")
    for col in ("record", "metric", "stored", "recomputed", f"{args.level:.0%} interval"):
        table.add_column(col, justify="left" if col in ("record", "metric") else "right")
    checked, differ, skipped = 0, 0, []
    for record in iter_results(args.results):
        if not record.predictions:
            skipped.append(str(record.path))
            continue
        arrays = record.load_predictions()
        recomputed = metrics_from_predictions(arrays, record.task.num_classes or 0) if "y_true" in arrays else {}
        ci = intervals(arrays, record.metrics, seed=record.seed, B=args.bootstrap, level=args.level)
        for name, value in recomputed.items():
            stored = record.metric(name)
            same = stored is not None and abs(stored - value) < 1e-9
            differ += not same
            low_high = ci.get(name)
            table.add_row(str(record.path), name, "–" if stored is None else f"{stored:.4f}", f"{value:.4f}",
                          f"[{low_high[0]:.2f}, {low_high[1]:.2f}]" if low_high else "",
                          style=None if same else "red")
        checked += 1
    console.print(table)
    console.print(f"{checked} records rescored from predictions, {differ} metric(s) differ from the stored values"
                  + (f"; {len(skipped)} record(s) have no stored predictions (older schema): rerun with --force" if skipped else ""))
    return 1 if differ else 0


def _cmd_suites(args, console) -> int:
    from .tasks import list_suites

    for suite, names in list_suites().items():
        console.print(f"[bold]{suite}[/]: {', '.join(names)}")
    return 0


def _add_cache_parser(sub) -> None:
    cache = sub.add_parser("cache", help="the feature cache: list (ls), sizes (du), verify [--repair], prune",
                           description="Inspect and maintain the feature cache. Every entry carries an xxh3-128 checksum "
                           "per file, checked on each read; `verify` checks them all at once.")
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = actions.add_parser("ls", help="one line per entry: key, model, dataset, shape, size, last use")
    du = actions.add_parser("du", help="disk use by kind (entries, unfinished extractions, debris) and by model")
    verify = actions.add_parser("verify", help="check every entry's checksums, shape and values; exit 1 on damage")
    verify.add_argument("--repair", action="store_true",
                        help="remove damaged entries, damaged shards and temporary debris (the next run recomputes them)")
    prune = actions.add_parser("prune", help="remove debris always; entries by age or model; --dry-run to preview",
                               description="Without options, removes only temporary debris of killed processes and "
                               "orphaned lock files. With --older-than and --model together, removes entries matching both.")
    prune.add_argument("--older-than", type=_days, metavar="DAYS", help="entries not used for DAYS days")
    prune.add_argument("--model", metavar="NAME", help="entries of this model name (shell wildcards allowed, e.g. 'pixels-*')")
    prune.add_argument("--partial", action="store_true", help="also unfinished extractions (a rerun would resume from them)")
    prune.add_argument("--all", dest="everything", action="store_true", help="everything not in use by a running process")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    for p in (ls, du, verify, prune):
        p.add_argument("--cache-dir", help="feature cache (default: $EVALBENCH_HOME/cache, else $XDG_CACHE_HOME/evalbench)")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _cmd_cache(args, console) -> int:
    import time

    from rich.table import Table

    from . import cache_admin
    from .errors import human_bytes

    cache = cache_admin.open_cache(args.cache_dir)
    items = cache_admin.scan(cache)
    if args.cache_command == "ls":
        table = Table(title=f"feature cache {cache.root}")
        for col in ("key", "kind", "model", "dataset", "shape", "size", "last used"):
            table.add_column(col, justify="right" if col == "size" else "left")
        now = time.time()
        for i in items:
            if i.kind == "lock":
                continue
            shape = "x".join(str(x) for x in (i.manifest or {}).get("shape", [])) or "–"
            table.add_row(i.key[:12], i.kind, i.model if i.kind == "entry" else "–", i.dataset if i.kind == "entry" else "–",
                          shape, human_bytes(i.bytes), _age(now - i.mtime))
        console.print(table)
        return 0
    if args.cache_command == "du":
        return _cache_du(cache, items, console)
    if args.cache_command == "verify":
        return _cache_verify(cache, args.repair, console)
    chosen = cache_admin.select(items, args.older_than, args.model, args.partial, args.everything)
    if args.dry_run:
        for i in chosen:
            console.print(f"would remove {i.kind} {i.path} ({human_bytes(i.bytes)})", highlight=False, soft_wrap=True)
        console.print(f"{len(chosen)} item(s), {human_bytes(sum(i.bytes for i in chosen))} (dry run: nothing removed)")
        return 0
    removed, busy = cache_admin.prune(cache, chosen)
    console.print(f"removed {len(removed)} item(s), {human_bytes(sum(i.bytes for i in removed))} from {cache.root}"
                  + (f"; {len(busy)} in use by a running evalbench were kept" if busy else ""), highlight=False, soft_wrap=True)
    return 0


def _cache_du(cache, items, console) -> int:
    from . import cache_admin
    from .errors import human_bytes

    labels = {"entry": "entries", "partial": "unfinished extractions", "debris": "temporary debris", "lock": "lock files"}
    totals = cache_admin.summary(items)
    for kind, label in labels.items():
        n, b = totals.get(kind, (0, 0))
        console.print(f"{human_bytes(b):>10}  {n:5d} {label}", highlight=False)
    console.print(f"{human_bytes(sum(i.bytes for i in items)):>10}  total in {cache.root}", highlight=False, soft_wrap=True)
    per_model: dict[str, int] = {}
    for i in items:
        if i.kind == "entry":
            per_model[i.model] = per_model.get(i.model, 0) + i.bytes
    for model, b in sorted(per_model.items(), key=lambda kv: -kv[1]):
        console.print(f"{human_bytes(b):>10}  {model}", highlight=False, soft_wrap=True)
    return 0


def _cache_verify(cache, repair: bool, console) -> int:
    from . import cache_admin

    checked, damaged, removed = 0, 0, 0
    for item, problem, gone in cache_admin.verify(cache, repair):
        checked += 1
        if problem:
            damaged += 1
            removed += gone
            action = "removed" if gone else ("in use, kept" if repair else "damaged")
            console.print(f"{action}: {item.kind} {item.path}: {problem}", highlight=False, soft_wrap=True)
    line = f"verified {checked} item(s) in {cache.root}: {damaged} damaged"
    if repair:
        line += f", {removed} removed (the next run recomputes them)"
    elif damaged:
        line += "; `evalbench cache verify --repair` removes them so that the next run recomputes them"
    console.print(line, highlight=False, soft_wrap=True)
    return 1 if damaged > removed else 0


def _add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """--debug after any subcommand too (`evalbench run ... --debug`), not only before it."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in action.choices.values():
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            _add_debug_flag(sub)


def _report(exc: BaseException, err, debug: bool, line: str) -> None:
    """One line on stderr; with --debug, the traceback (with its causes) first."""
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    from rich.text import Text

    head, _, rest = line.partition(" ")
    err.print(Text.assemble((head, "bold red"), " ", rest), highlight=False, soft_wrap=True)


def _os_error_line(exc: OSError) -> str:
    """An environment problem (a full disk, a permission, a vanished file) as one line naming the path."""
    from .errors import is_no_space

    where = f": {exc.filename}" if exc.filename else ""
    if is_no_space(exc) and exc.filename:
        from .errors import disk_full

        return f"error: {disk_full(Path(exc.filename).parent, None, f'writing {Path(exc.filename).name}')}"
    fix = {PermissionError: "check its permissions", FileNotFoundError: "check the path",
           IsADirectoryError: "pass a file", NotADirectoryError: "a file stands where a directory should be"}.get(
        type(exc), "check the path, its permissions and the disk")
    return f"error: {exc.strerror or exc}{where} ({type(exc).__name__}); {fix}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    from rich.console import Console

    parser = build_parser()
    _add_debug_flag(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    # piped or redirected output: wide enough that tables never cut names (a terminal keeps its width)
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 240)
    err = Console(stderr=True)
    handlers = {"run": _cmd_run, "leaderboard": _cmd_leaderboard, "tasks": _cmd_tasks, "suites": _cmd_suites, "data": _cmd_data,
                "compare": _cmd_compare, "rescore": _cmd_rescore, "task": _cmd_task, "cache": _cmd_cache}
    try:
        return handlers[args.command](args, console)
    except EvalbenchError as exc:
        _report(exc, err, args.debug, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: finished results and cached features are kept; rerun the same command to resume")
        return 130
    except BrokenPipeError:  # `evalbench tasks --json | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except OSError as exc:
        _report(exc, err, args.debug, _os_error_line(exc))
        return 2
    except Exception as exc:  # a bug (ours or a library's): one line, the traceback on request
        _report(exc, err, args.debug, f"error: internal error {describe_exception(exc)}; rerun with --debug for the "
                "traceback and report it at the evalbench issue tracker")
        return 1


if __name__ == "__main__":
    sys.exit(main())
