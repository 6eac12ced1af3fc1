"""The `evalbench` command line: a thin argparse layer over the public API, with rich output."""
from __future__ import annotations

import argparse
import logging
import math
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
    w.add_argument("--protocols", nargs="+", metavar="ID", help="run only these protocol ids (e.g. linear knn)")
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

    lb = sub.add_parser("leaderboard", help="render markdown leaderboards from result files")
    lb.add_argument("results", nargs="*", default=["results"], help="results directories (default: results)")
    lb.add_argument("-o", "--output", help="write the markdown here (default: print it)")
    lb.add_argument("--metric", default="top1", help="metric to rank by (default top1)")
    lb.add_argument("--title", default="evalbench leaderboard")

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

    if args.reference and not Path(args.reference).is_dir():  # checked now, not after the run
        raise EvalbenchError(f"--reference {args.reference} is not a directory; pass a results directory such as results")
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
    groups = suite_task_groups(list_tasks().values()).get(args.suite or "")
    if groups and len(df):
        for line in group_summary(df.to_dict("records"), groups):
            console.print(f"{args.suite} {line}")


def _cmd_leaderboard(args, console) -> int:
    from .leaderboard import render_markdown, suite_task_groups
    from .results import iter_results
    from .tasks import list_tasks

    records = iter_results(args.results)
    text = render_markdown(records, args.results, metric=args.metric, title=args.title,
                           suite_tasks=suite_task_groups(list_tasks().values()))
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        console.print(f"wrote {out} from {len(records)} result records")
    else:
        print(text)
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
            forest_plot(rows, suites, path)
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
                "compare": _cmd_compare, "rescore": _cmd_rescore}
    handlers["cache"] = _cmd_cache
    try:
        return handlers[args.command](args, console)
    except EvalbenchError as exc:
        _report(exc, err, args.debug, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: finished results and cached features are kept; rerun the same command to resume")
        return 130
    except OSError as exc:
        _report(exc, err, args.debug, _os_error_line(exc))
        return 2
    except Exception as exc:  # a bug (ours or a library's): one line, the traceback on request
        _report(exc, err, args.debug, f"error: internal error {describe_exception(exc)}; rerun with --debug for the "
                "traceback and report it at the evalbench issue tracker")
        return 1


if __name__ == "__main__":
    sys.exit(main())
