"""`evalbench tasks`, `suites`, `task new` and `data status|prepare`: what tasks exist and where their data is."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .cli_args import protocol_options, split_list


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
            splits = ", ".join(f"{k}={v['pool']}" + (f"[{v['size']}]" if v.get("size") else "")
                               + (f"[{v['subset']}]" if v.get("subset") else "") for k, v in t.splits.items())
        if t.test_sets:  # scored with the same fit, when their folders are present
            splits += "; also tested on " + ", ".join(t.test_sets)
        rows.append({"task": name, "version": t.version, "suites": list(t.suites), "group": t.group or None,
                     "dataset": {"source": t.source, **t.source_options}, "splits": splits,
                     "protocols": [e.id for e in t.protocols], "metric": t.metric, "data": state, "where": where,
                     "file": t.path})
    return rows


def cmd_tasks(args, console) -> int:
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


def cmd_own_data_status(args, console) -> int:
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


def cmd_imagenet_status(args, console) -> int:
    """`data status imagenet`: the copy found, its layout, each pool's counts against the complete sets, the subsets."""
    from rich.table import Table

    from .data.imagenet.status import status

    st = status(args.data_root)
    if st["root"] is None or st["error"]:
        where = st["root"] or ", ".join(st["looked"]) or "nowhere: pass --data-root DIR or set $EVALBENCH_DATA"
        console.print(f"ImageNet (ILSVRC-2012): [red]{st['error'] or 'not found'}[/] (looked in {where})",
                      highlight=False, soft_wrap=True)
        return 0
    console.print(f"ImageNet (ILSVRC-2012) at {st['root']}, {st['layout']} layout"
                  + "".join(f"; {n}" for n in st["notes"]), highlight=False, soft_wrap=True)
    table = Table(title="ImageNet data")
    for col in ("pool", "images", "expected", "classes", "where / notes"):
        table.add_column(col)
    for r in st["pools"]:
        notes = [r["where"]] + [f"[yellow]{n}[/]" for n in r["notes"]]
        table.add_row(r["pool"], f"{r['images']:,}", f"{r['expected']:,}", r["classes"], "\n".join(notes))
    console.print(table)
    for s in st["subsets"]:
        state = ("[green]complete[/]" if s["present"] == s["listed"] else
                 f"[yellow]{s['listed'] - s['present']:,} missing[/] (first: {', '.join(s['first_missing'])})")
        console.print(f"subset {s['subset']}: {s['present']:,} of {s['listed']:,} listed train images present, {state}",
                      highlight=False, soft_wrap=True)
    return 0


def cmd_data(args, console) -> int:
    from rich.table import Table

    from .data.vtab import prepare, status_rows

    if args.suite == "transfer":
        return cmd_transfer_data(args, console)
    if args.data_command == "status" and args.suite == "imagenet":
        return cmd_imagenet_status(args, console)
    if args.data_command == "status" and args.suite != "vtab":
        return cmd_own_data_status(args, console)
    tasks = _vtab_folders(split_list(args.tasks))
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


def _transfer_names(names: Optional[list[str]]) -> Optional[list[str]]:
    """Catalog keys (food101) for the names given: keys or the task names `run` uses (transfer-food101)."""
    from .data.transfer import DATASETS
    from .errors import UnknownNameError

    if not names:
        return None
    out = []
    for name in names:
        key = name[len("transfer-"):] if name.startswith("transfer-") else name
        if key not in DATASETS:
            raise UnknownNameError("transfer dataset", name, [*DATASETS, *(f"transfer-{k}" for k in DATASETS)])
        out.append(key)
    return list(dict.fromkeys(out))


def cmd_transfer_data(args, console) -> int:
    """`data status transfer` (per dataset: where, split sizes, classes covered, split definitions) and `data prepare transfer`."""
    from rich.table import Table

    from .data.transfer import prepare, status_rows
    from .data.transfer.source import SUBDIR

    names = _transfer_names(split_list(args.tasks))
    if args.data_command == "prepare":
        for line in prepare(args.root, names):
            console.print(line, highlight=False, soft_wrap=True)
        return 0
    rows = status_rows(args.data_root, names)
    table = Table(title="Transfer suite data (Kornblith et al. 2019)")
    for col in ("dataset", "metric", "train / val / test", "classes covered", "where / notes"):
        table.add_column(col)
    found = sum(bool(r["counts"]) for r in rows)
    for r in rows:
        counts = " / ".join(str(r["counts"].get(k, "–")) for k in ("train", "val", "test"))
        cover = ", ".join(f"{k} {v}/{r['classes']}" for k, v in r["coverage"].items())
        notes = ([r["where"]] if r["where"] else []) + [f"val: {r['splits']['val']}"]
        notes += [("[yellow]warning:[/] " if r["where"] else "[red]missing:[/] ") + p for p in r["problems"]]
        table.add_row(r["dataset"], r["metric"], counts, cover, "\n".join(notes))
    console.print(table)
    console.print(f"{found} of {len(rows)} datasets found. Each is looked for in DIR/{SUBDIR} and DIR (DIR = --data-root, "
                  "then $EVALBENCH_DATA), in torchvision's layouts (README, Transfer suite); "
                  "`evalbench data prepare transfer --root DIR` downloads what torchvision can.",
                  highlight=False, soft_wrap=True)
    return 0


def cmd_task(args, console) -> int:
    from .protocols import get_protocol
    from .tasks import _expand_protocols, _overrides, dataset_task_mapping, write_task_yaml

    options = protocol_options(args)
    items = [{"name": p, **extra} if (extra := _overrides(p, options)) else p for p in split_list(args.protocols) or []]
    for entry in _expand_protocols(items, "--protocols") if items else ():
        get_protocol(entry.name, entry.params)  # unknown names and bad values: one line, before writing
    mapping = dataset_task_mapping(args.dataset, args.name, args.data_root, items or None)
    path = write_task_yaml(mapping, args.dir, force=args.force)
    console.print(f"wrote {path}; run it with: evalbench run --model MODEL --tasks {args.name}"
                  + ("" if args.dir is None else f" (with {Path(args.dir).expanduser()} in $EVALBENCH_TASKS)"),
                  highlight=False, soft_wrap=True)
    return 0


def cmd_suites(args, console) -> int:
    from .tasks import list_suites

    for suite, names in list_suites().items():
        console.print(f"[bold]{suite}[/]: {', '.join(names)}")
    return 0
