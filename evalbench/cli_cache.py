"""`evalbench cache verify|ls|du|prune`: see and manage the feature cache."""
from __future__ import annotations




def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def cmd_cache(args, console) -> int:
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
