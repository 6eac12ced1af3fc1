"""The `evalbench` command line: a thin argparse layer over the public API, with rich output."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import EvalbenchError

EXAMPLES = """examples:
  evalbench run --model effnet-lite0 --suite quick
  evalbench run --model pixels --suite quick
  evalbench run --model torchvision:resnet50 --tasks digits fashion-mnist-mini
  evalbench run --model ckpt.pth --arch resnet50 --suite quick
  evalbench leaderboard results -o leaderboards/quick.md
"""


def _floats3(text: str) -> tuple[float, float, float]:
    parts = [float(x) for x in text.replace(",", " ").split()]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 numbers like 0.485,0.456,0.406, got {text!r}")
    return tuple(parts)  # type: ignore[return-value]


def _split_list(values: Optional[list[str]]) -> Optional[list[str]]:
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalbench", description="Evaluate frozen pretrained encoders: features are extracted once into a cache, "
        "then standard protocols (linear probe, k-NN) run on them and results are written as JSON.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"evalbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
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
    p.add_argument("--input-size", type=int, help="crop size fed to the model")
    p.add_argument("--crop-pct", type=float, help="input size / resize size (e.g. 0.875)")
    p.add_argument("--resize", type=int, help="shorter side before the centre crop (instead of --crop-pct)")
    p.add_argument("--interpolation", choices=["bilinear", "bicubic", "nearest"])
    p.add_argument("--mean", type=_floats3, help="three numbers, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_floats3, help="three numbers, e.g. 0.229,0.224,0.225")
    w = run.add_argument_group("what to run")
    w.add_argument("--suite", help="a suite name (see `evalbench suites`)")
    w.add_argument("--tasks", nargs="+", metavar="TASK", help="task names (space or comma separated); narrows --suite")
    w.add_argument("--protocols", nargs="+", metavar="ID", help="run only these protocol ids (e.g. linear knn)")
    w.add_argument("--seed", type=int, default=0, help="seed for every random choice in the protocols (default 0)")
    w.add_argument("--force", action="store_true", help="recompute results that already exist (features still come from the cache)")
    w.add_argument("--allow-missing", action="store_true",
                   help="score the tasks whose data is here and skip the rest (suite means are then marked partial)")
    io = run.add_argument_group("files")
    io.add_argument("--output", default="results", help="results directory (default: results)")
    io.add_argument("--cache-dir", help="feature cache (default: $EVALBENCH_HOME/cache, else $XDG_CACHE_HOME/evalbench)")
    io.add_argument("--data-root", help="where non-bundled datasets live (default: $EVALBENCH_DATA)")
    io.add_argument("--batch-size", type=int, default=64, help="extraction batch size (default 64)")
    io.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")

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

    data = sub.add_parser("data", help="where each task's data is (status) and how to get it (prepare)")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    st = data_sub.add_parser("status", help="per task: data route, split variant, counts, class coverage")
    st.add_argument("suite", choices=["vtab"], help="the suite to inspect")
    st.add_argument("--data-root", help="where datasets live (default: $EVALBENCH_DATA)")
    st.add_argument("--tasks", nargs="+", metavar="TASK", help="only these export folder names (e.g. cifar dtd)")
    pr = data_sub.add_parser("prepare", help="download what can be downloaded; print the manual steps for the rest")
    pr.add_argument("suite", choices=["vtab"], help="the suite to prepare")
    pr.add_argument("--root", required=True, help="the data root to fill (then pass it as --data-root or $EVALBENCH_DATA)")
    pr.add_argument("--tasks", nargs="+", metavar="TASK", help="only these export folder names (e.g. cifar dtd)")

    sub.add_parser("tasks", help="list registered tasks, their data and protocols").add_argument(
        "--data-root", help="where non-bundled datasets live (default: $EVALBENCH_DATA)")
    sub.add_parser("suites", help="list suites and their tasks")
    return parser


def _cmd_run(args, console) -> int:
    from rich.table import Table

    from .leaderboard import format_metric
    from .runner import RunSummary, evaluate

    summary = RunSummary()
    model_options = {k: getattr(args, k) for k in ("arch", "weights", "random_init", "input_size", "crop_pct",
                                                    "interpolation", "mean", "std", "optimize", "resize",
                                                    "checkpoint_key", "trust_checkpoint", "layer", "pool", "dtype")}
    df = evaluate(args.model, suite=args.suite, tasks=_split_list(args.tasks), output=args.output,
                  cache_dir=args.cache_dir, data_root=args.data_root, protocols=_split_list(args.protocols),
                  batch_size=args.batch_size, seed=args.seed, force=args.force, name=args.name,
                  progress=args.progress, console=console, summary=summary, allow_missing=args.allow_missing,
                  **model_options)
    models = list(dict.fromkeys(df["model"])) if len(df) else [args.model]
    # several feature choices (--pool a,b) give several models: then each row names its own
    lead = ["model"] if len(models) > 1 else []
    table = Table(title=f"evalbench results: {', '.join(models)}")
    for col in (*lead, "task", "protocol", "top1", "top5", "mean per class", "status"):
        table.add_column(col, justify="right" if col in ("top1", "top5", "mean per class") else "left")
    for _, r in df.iterrows():
        table.add_row(*[r[c] for c in lead], r["task"], r["protocol"], format_metric(r["top1"]),
                      format_metric(r["top5"]), format_metric(r["mean_per_class"]), r["status"])
    console.print(table)
    for note in summary.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    _print_suite_means(args, df, summary, console)
    console.print(f"features: {summary.extracted} samples extracted, {summary.reused} reused from the cache; "
                  f"results: {len(summary.computed)} computed, {len(summary.skipped)} already up to date; written under {args.output}/")
    return 0


def _print_suite_means(args, df, summary, console) -> None:
    """Suite and group means after a run over a grouped suite (VTAB), partial when tasks were skipped."""
    from .leaderboard import group_summary, suite_task_groups
    from .tasks import list_tasks

    if summary.missing:
        console.print(f"[yellow]skipped for lack of data ({len(summary.missing)}):[/] {', '.join(summary.missing)}")
    groups = suite_task_groups(list_tasks().values()).get(args.suite or "")
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


def _cmd_tasks(args, console) -> int:
    from rich.table import Table

    from .data import make_source
    from .tasks import list_tasks

    table = Table(title="evalbench tasks")
    for col in ("task", "suites", "dataset", "splits", "protocols", "data"):
        table.add_column(col)
    for name, t in list_tasks().items():
        source = make_source(t.source, t.source_options, data_root=args.data_root)
        where = source.locate()
        ds = f"{t.source}:{t.source_options.get('name', name)}"
        if "partition" in t.splits:
            p = t.splits["partition"]
            splits = f"{p['pool']} -> " + "/".join(f"{k} {v}" for k, v in p["sizes"].items()) + f" (seed {p.get('seed', 0)})"
        else:
            splits = ", ".join(f"{k}={v['pool']}" + (f"[{v['size']}]" if v.get("size") else "") for k, v in t.splits.items())
        table.add_row(name, ",".join(t.suites), ds, splits, ", ".join(e.id for e in t.protocols),
                      f"[green]available[/] ({where})" if where else "[yellow]not found[/] (downloaded on first run when online)")
    console.print(table)
    return 0


def _cmd_data(args, console) -> int:
    from rich.table import Table

    from .data.vtab import prepare, status_rows
    from .data.vtab.tasks import VTAB_TASKS
    from .errors import UnknownNameError

    tasks = _split_list(args.tasks)
    for t in tasks or []:
        if t not in VTAB_TASKS:
            raise UnknownNameError("VTAB task folder", t, VTAB_TASKS)
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


def _cmd_suites(args, console) -> int:
    from .tasks import list_suites

    for suite, names in list_suites().items():
        console.print(f"[bold]{suite}[/]: {', '.join(names)}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from rich.console import Console

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    console = Console(stderr=False)
    err = Console(stderr=True)
    handlers = {"run": _cmd_run, "leaderboard": _cmd_leaderboard, "tasks": _cmd_tasks, "suites": _cmd_suites, "data": _cmd_data}
    try:
        return handlers[args.command](args, console)
    except EvalbenchError as exc:
        from rich.markup import escape  # messages name extras like 'evalbench[plots]': not markup

        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: finished results and cached features are kept; rerun the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
