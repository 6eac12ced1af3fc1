"""`evalbench leaderboard`, `compare` and `rescore`: commands that read result records."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import EvalbenchError


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


def cmd_leaderboard(args, console) -> int:
    from .leaderboard import build_leaderboard, load_records, suite_task_groups, task_facts, write_frame
    from .tasks import list_tasks

    out = Path(args.output) if args.output else None
    _leaderboard_preflight(args, out)
    records, skipped = load_records(args.results)
    _leaderboard_warn(skipped, "JSON files skipped: not readable evalbench result records", args.strict)
    registered = list_tasks().values()
    board = build_leaderboard(records, args.metric, suite_task_groups(registered), facts=task_facts(registered))
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


def cmd_compare(args, console) -> int:
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


def cmd_rescore(args, console) -> int:
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
