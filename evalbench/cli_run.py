"""`evalbench run`: the run, its summary table, suite means, the reference check and --dry-run."""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import EvalbenchError
from .cli_args import protocol_options, split_list


def cmd_run(args, console) -> int:
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
    df = evaluate(args.model, suite=args.suite, tasks=split_list(args.tasks), output=args.output,
                  cache_dir=args.cache_dir, data_root=args.data_root, protocols=split_list(args.protocols),
                  batch_size=args.batch_size, seed=args.seed, force=args.force, name=args.name,
                  progress=args.progress, console=console, summary=summary, allow_missing=args.allow_missing,
                  dataset=args.dataset, task_name=args.task_name, protocol_options=protocol_options(args),
                  num_workers=args.num_workers, device=args.device,
                  report_every=None if sys.stderr.isatty() else 30.0, **model_options)
    if summary.rank != 0:  # torchrun: rank 0 reports
        return 0
    models = list(dict.fromkeys(df["model"])) if len(df) else [args.model]
    # several feature choices (--pool a,b) give several models: then each row names its own
    lead = ["model"] if len(models) > 1 else []
    table = Table(title=f"evalbench results: {', '.join(models)}")
    # tasks whose headline metric is not top1 (mean per class, VOC's 11-point mAP) get a headline column
    headline = len(df) and (df["metric"] != "top1").any()
    numeric = ("n (test)", "top1", "top5", "mean per class", "headline")
    for col in (*lead, "task", "protocol", "n (test)", "top1", "top5", "mean per class", *(["headline"] if headline else []),
                "status"):
        table.add_column(col, justify="right" if col in numeric else "left")
    unconverged = []
    for _, r in df.iterrows():
        top1 = format_metric(r["top1"], r["top1_ci"] if args.ci else None)
        if r["converged"] is False:
            top1 += " †"
            unconverged.append(f"{r['task']}/{r['protocol']}")
        extra = [f"{r['metric']} {format_metric(r['value'], r['value_ci'] if args.ci else None)}"] if headline else []
        table.add_row(*[r[c] for c in lead], r["task"], r["protocol"], str(r["n_test"] or "–"), top1, format_metric(r["top5"]),
                      format_metric(r["mean_per_class"], r["mean_per_class_ci"] if args.ci else None), *extra, r["status"])
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

    rows = dry_run(args.model, suite=args.suite, tasks=split_list(args.tasks), cache_dir=args.cache_dir,
                   data_root=args.data_root, protocols=split_list(args.protocols), batch_size=args.batch_size,
                   device=args.device, allow_missing=args.allow_missing, dataset=args.dataset, task_name=args.task_name,
                   protocol_options=protocol_options(args), name=args.name, num_workers=args.num_workers, **model_options)
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
    from .leaderboard import group_summary, suite_task_groups, task_facts
    from .tasks import list_tasks

    if summary.missing:
        console.print(f"[yellow]skipped for lack of data ({len(summary.missing)}):[/] {', '.join(summary.missing)}")
    tasks = list_tasks()
    groups = suite_task_groups(tasks.values()).get(args.suite or "")
    if groups and (len(df) > 1 or any(groups.values())):
        for line in group_summary(df.to_dict("records"), groups, facts=task_facts(tasks.values())):
            console.print(f"{args.suite} {line}")
