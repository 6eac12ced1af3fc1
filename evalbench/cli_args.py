"""The command line's grammar: argument types that refuse bad values in one line, and the parser."""
from __future__ import annotations

import argparse
import math
from typing import Optional

from . import __version__


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


def protocol_options(args) -> dict:
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


def split_list(values: Optional[list[str]]) -> Optional[list[str]]:
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
    lb.add_argument("--metric", default="headline",
                    help="metric to show and rank by: headline (default: each task's own, named in a `metric` row where "
                         "it is not top1: mean_per_class for Aircraft, Pets, Caltech-101, Flowers; map11 for VOC2007), "
                         "or one metric for every column (top1, top5, mean_per_class, ...)")
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
                             "transfer: per dataset location, split sizes, coverage; "
                             "imagenet: layout, each pool's counts against the complete sets, the subset lists; "
                             "a dataset SPEC: its layout, splits, classes and counts")
    st.add_argument("suite", metavar="vtab|transfer|imagenet|SPEC",
                    help="vtab, transfer, imagenet, or your own data as for run --dataset (folder, list:FILE, hf:ID)")
    st.add_argument("--data-root", help="where datasets live (default: $EVALBENCH_DATA)")
    st.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (vtab-cifar100 or the export folder name "
                    "cifar; transfer-food101 or food101)")
    pr = data_sub.add_parser("prepare", help="download what can be downloaded; print the manual steps for the rest")
    pr.add_argument("suite", choices=["vtab", "transfer"], help="the suite to prepare")
    pr.add_argument("--root", required=True, help="the data root to fill (then pass it as --data-root or $EVALBENCH_DATA)")
    pr.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (vtab-cifar100 or the export folder name "
                    "cifar; transfer-food101 or food101)")

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


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """--debug after any subcommand too (`evalbench run ... --debug`), not only before it."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in action.choices.values():
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            add_debug_flag(sub)
