"""PNG plots of leaderboards and paired comparisons (few-shot curves, group means, forest plots); matplotlib is optional."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from .errors import EvalbenchError
from .results import slugify

PLOTS_HINT = "pip install 'evalbench[plots]'"
_SHOTS = re.compile(r"^(?P<family>.+)-(?P<k>\d+)shot$")
_VERDICT_COLOURS = {"better": "#1b7837", "worse": "#b2182b"}
_NEUTRAL = "#4d4d4d"
DPI = 130


class PlotsUnavailableError(EvalbenchError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raises PlotsUnavailableError (one line naming the extra) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotsUnavailableError(f"plots need matplotlib, which is not installed: {PLOTS_HINT}") from None


def _figure(width: float, height: float):
    """A Figure outside pyplot: no global backend or state is touched (safe inside notebooks and threads)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# ---------------------------------------------------------------------------- leaderboard plots


def write_leaderboard_plots(frame: pd.DataFrame, beside: Path | str) -> list[tuple[str, Path]]:
    """Every plot a leaderboard frame supports, written beside `beside` as `<stem>.<what>.png`.

    Few-shot accuracy against K (one PNG per few-shot protocol family) and the group means with
    their intervals (one PNG per grouped table, e.g. VTAB).

    Returns:
        (caption, path) of each PNG written, in a stable order.
    """
    require_matplotlib()
    beside = Path(beside)
    stem = beside.with_suffix("") if beside.suffix else beside
    written = []
    for (family, version), rows in _fewshot_families(frame):
        path = stem.with_name(f"{stem.name}.{slugify(family)}-v{slugify(version)}.png")
        title = f"{family} (protocol v{version}): {rows['metric'].iloc[0]} vs shots per class"
        written.append((title, fewshot_plot(rows, path, title)))
    for table, rows in frame[frame["kind"].isin(["group mean", "mean"])].groupby("table", sort=False):
        if (rows["kind"] == "group mean").any():
            path = stem.with_name(f"{stem.name}.{slugify(table)}.groups.png")
            title = f"{table}: group means"
            written.append((title, group_means_plot(rows, path, title)))
    return written


def _fewshot_families(frame: pd.DataFrame):
    tasks = frame[frame["kind"] == "task"]
    parts = tasks["protocol"].str.extract(_SHOTS)
    tasks = tasks.assign(family=parts["family"], k=pd.to_numeric(parts["k"])).dropna(subset=["family"])
    return tasks.groupby(["family", "protocol_version"], sort=True)


def fewshot_plot(rows: pd.DataFrame, path: Path | str, title: str = "") -> Path:
    """Accuracy against K (log axis) per model, one panel per task, with the interval as a band.

    Args:
        rows: tidy leaderboard rows (task, model, k, value, ci_low, ci_high, metric) of one few-shot family.
    """
    tasks = sorted(rows["task"].unique())
    models = list(dict.fromkeys(rows.sort_values("value", ascending=False)["model"]))
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = _figure(max(6.0, 4.2 * ncols), 3.4 * nrows + 1.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = dict(zip(models, _colours(len(models)), strict=True))
    for ax, task in zip(axes, tasks, strict=False):
        on_task = rows[rows["task"] == task]
        for model in models:
            r = on_task[on_task["model"] == model].sort_values("k")
            if r.empty:
                continue
            ax.plot(r["k"], r["value"], marker="o", color=colours[model], label=model)
            band = r.dropna(subset=["ci_low", "ci_high"])
            if len(band):
                ax.fill_between(band["k"], band["ci_low"], band["ci_high"], color=colours[model], alpha=0.18, linewidth=0)
        ks = sorted(on_task["k"].unique())
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(int(k)) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("shots per class (K)")
        ax.set_ylabel(f"{rows['metric'].iloc[0]} (%)")
        ax.set_title(task)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(models)), fontsize="small",
               title="model (band: 95% interval)", title_fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def group_means_plot(rows: pd.DataFrame, path: Path | str, title: str = "") -> Path:
    """Each model's group means and overall mean with their intervals (points with error bars, models side by side).

    Args:
        rows: tidy leaderboard rows of one grouped table whose kind is "group mean" or "mean".
    """
    columns = list(dict.fromkeys(rows["task"]))
    models = list(dict.fromkeys(rows["model"]))
    fig = _figure(max(6.0, 1.6 * len(columns) + 3.0), 4.2)
    ax = fig.subplots()
    colours = _colours(len(models))
    width = 0.7 / max(1, len(models))
    for i, model in enumerate(models):
        r = rows[rows["model"] == model].set_index("task").reindex(columns)
        x = [j - 0.35 + width * (i + 0.5) for j in range(len(columns))]
        low = (r["value"] - r["ci_low"]).fillna(0).clip(lower=0)
        high = (r["ci_high"] - r["value"]).fillna(0).clip(lower=0)
        partial = (~r["complete"].fillna(True).astype(bool)).any()
        ax.errorbar(x, r["value"], yerr=[low, high], fmt="o", capsize=3, color=colours[i],
                    label=model + (" (partial)" if partial else ""), mfc="white" if partial else colours[i])
    ax.set_xticks(range(len(columns)), columns)
    ax.set_ylabel(f"{rows['metric'].iloc[0]} (%)")
    ax.grid(True, axis="y", alpha=0.3)
    for j in range(1, len(columns)):
        ax.axvline(j - 0.5, color="#bbbbbb", linewidth=0.6)
    ax.set_xlim(-0.5, len(columns) - 0.5)
    fig.legend(loc="outside right upper", fontsize="small", title="model (bars: 95% interval)")
    if title:
        ax.set_title(title)
    return _save(fig, path)


# ---------------------------------------------------------------------------- comparisons


def forest_plot(task_comparisons: Sequence[Any], suite_comparisons: Sequence[Any], path: Path | str,
                label_a: str = "a", label_b: str = "b", title: Optional[str] = None) -> Path:
    """The paired differences a - b with their intervals, one row per (task, protocol) and per suite mean.

    Args:
        task_comparisons: `compare.TaskComparison` rows (task, protocol, diff, p_holm, verdict).
        suite_comparisons: `compare.SuiteComparison` rows (protocol, tasks, diff).
        path: the PNG to write.
        label_a, label_b: the two runs' names, for the axis label.
    Returns:
        The path written.
    Raises:
        EvalbenchError: there is nothing to plot.
    """
    rows = [(f"{t.task} · {t.protocol}", t.diff, t.verdict, f"p_holm {_p_text(t.p_holm)} · {t.verdict}", "o")
            for t in task_comparisons]
    for s in suite_comparisons:
        sign = "better" if s.diff.low > 0 else "worse" if s.diff.high < 0 else "not separable"
        rows.append((f"mean of {s.tasks} tasks · {s.protocol}", s.diff, sign, "suite mean (paired bootstrap)", "D"))
    if not rows:
        raise EvalbenchError("forest_plot: no comparisons to draw")
    fig = _figure(10.0, 0.42 * len(rows) + 1.6)
    ax = fig.subplots()
    y = list(range(len(rows)))[::-1]
    for yi, (_, ci, verdict, _, marker) in zip(y, rows, strict=True):
        colour = _VERDICT_COLOURS.get(verdict, _NEUTRAL)
        ax.errorbar([ci.estimate], [yi], xerr=[[ci.estimate - ci.low], [ci.high - ci.estimate]], fmt=marker,
                    color=colour, capsize=3, markersize=7 if marker == "D" else 5)
    if suite_comparisons:
        ax.axhline(len(suite_comparisons) - 0.5, color="#999999", linewidth=0.8)
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(y, [f"{r[1].estimate:+.2f} [{r[1].low:+.2f}, {r[1].high:+.2f}]   {r[3]}" for r in rows])
    right.tick_params(axis="y", length=0)
    level = getattr(rows[0][1], "level", 0.95) or 0.95
    ax.set_xlabel(f"{label_a} − {label_b}: top-1 difference in points ({level:.0%} paired bootstrap interval)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title or f"{label_a} vs {label_b} (green: {label_a} better; red: worse; grey: not separable)")
    return _save(fig, path)


def _p_text(p: float) -> str:
    return "n/a" if p != p else "<0.001" if p < 0.001 else f"{p:.3f}"
