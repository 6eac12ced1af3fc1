"""Task specs: strict loading of tasks/*.yaml (with `include`), the task registry and suites."""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError, UnknownNameError

TASK_KEYS = {"name", "version", "description", "suites", "dataset", "splits", "protocols", "include", "citation", "license",
             "group", "preprocess", "test_sets", "metric"}
# `preprocess` is the one task-level override a protocol may demand (VTAB: no centre crop)
PREPROCESS_KEYS = {"resize", "crop"}
SPLIT_NAMES = ("train", "val", "test")
SPLIT_KEYS = {"pool", "size", "seed", "subset"}
PARTITION_KEYS = {"pool", "sizes", "seed"}
#: Headline metrics a task may name (`metric:`); leaderboards show each column in its task's metric.
HEADLINE_METRICS = ("top1", "top5", "mean_per_class", "map11")
TEST_SET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class ProtocolEntry:
    """One protocol run on a task: `id` names the result file and leaderboard column."""

    id: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """A downstream task: which data, which splits, which protocols. Says nothing about models."""

    name: str
    version: str
    description: str
    suites: tuple[str, ...]
    source: str
    source_options: dict[str, Any]
    splits: dict[str, Any]
    protocols: tuple[ProtocolEntry, ...]
    path: str
    citation: str = ""
    license: str = ""
    group: str = ""  # the task's group inside its suite (VTAB: natural, specialized, structured)
    preprocess: dict[str, Any] = field(default_factory=dict)
    # extra named test splits scored with the same fit as splits.test (ImageNet-V2, -R, ...): name -> split spec
    test_sets: dict[str, Any] = field(default_factory=dict)
    metric: str = "top1"  # the headline metric of the task's leaderboard column

    @property
    def split_names(self) -> tuple[str, ...]:
        if "partition" in self.splits:
            return tuple(self.splits["partition"]["sizes"])
        return tuple(k for k in SPLIT_NAMES if k in self.splits)


def _unknown_keys(found: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(found - allowed)
    if extra:
        key = extra[0]
        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(sorted(allowed))}"
        raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one YAML mapping, merging the files its `include` names (the including file wins)."""
    if path in seen:
        raise ConfigError(f"{path}: include cycle through {' -> '.join(str(p) for p in seen)}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a task file must be a YAML mapping")
    includes = data.pop("include", [])
    merged: dict[str, Any] = {}
    for inc in [includes] if isinstance(includes, str) else includes:
        inc_path = (path.parent / inc).resolve()
        if not inc_path.is_file():
            raise ConfigError(f"{path}: included file {inc} not found at {inc_path}")
        merged.update(_read_yaml(inc_path, seen + (path,)))
    merged.update(data)
    return merged


def _expand_protocols(raw: Any, where: str) -> tuple[ProtocolEntry, ...]:
    """Accept `linear` or `{name: fewshot-linear, shots: [1, 5]}`; a list of shots becomes one entry per K."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: 'protocols' must be a non-empty list")
    entries = []
    for item in raw:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where}: each protocol is a name or a mapping with 'name', got {item!r}")
        params = {k: v for k, v in item.items() if k not in ("name", "id")}
        shots = params.get("shots")
        if isinstance(shots, list):
            for k in shots:
                entries.append(ProtocolEntry(f"{item.get('id', item['name'])}-{k}shot", item["name"], {**params, "shots": k}))
        else:
            pid = item.get("id") or (f"{item['name']}-{shots}shot" if shots is not None else item["name"])
            entries.append(ProtocolEntry(pid, item["name"], params))
    ids = [e.id for e in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{where}: protocol id {dup[0]!r} appears twice; give one an explicit 'id'")
    return tuple(entries)


def _check_splits(splits: Any, where: str) -> dict[str, Any]:
    if not isinstance(splits, dict):
        raise ConfigError(f"{where}: 'splits' must be a mapping")
    if "partition" in splits:
        _unknown_keys(set(splits), {"partition"}, f"{where} splits")
        part = splits["partition"]
        _unknown_keys(set(part), PARTITION_KEYS, f"{where} splits.partition")
        names = set(part.get("sizes", {}))
        if not {"train", "test"} <= names or not names <= set(SPLIT_NAMES):
            raise ConfigError(f"{where}: splits.partition.sizes needs train and test (and optionally val), got {sorted(names)}")
        return splits
    _unknown_keys(set(splits), set(SPLIT_NAMES), f"{where} splits")
    if not {"train", "test"} <= set(splits):
        raise ConfigError(f"{where}: splits need at least train and test")
    for name, spec in splits.items():
        if not isinstance(spec, dict) or "pool" not in spec:
            raise ConfigError(f"{where}: split {name!r} needs a 'pool' (e.g. {{pool: train}})")
        _unknown_keys(set(spec), SPLIT_KEYS, f"{where} splits.{name}")
        if "subset" in spec and ("size" in spec or "seed" in spec):
            raise ConfigError(f"{where}: split {name!r} has both 'subset' (a list of files) and 'size'/'seed' (a random "
                              "sample); give one")
        if "subset" in spec and (not isinstance(spec["subset"], str) or not spec["subset"].strip()):
            raise ConfigError(f"{where}: split {name!r}: 'subset' must be a shipped list name (e.g. simclr-1pct) or a "
                              f"file path, got {spec['subset']!r}")
    return splits


def _check_test_sets(test_sets: Any, where: str) -> dict[str, Any]:
    """`test_sets: {name: {pool: ...}}`: extra test splits, each scored with the fit made for splits.test."""
    if test_sets is None:
        return {}
    if not isinstance(test_sets, dict):
        raise ConfigError(f"{where}: 'test_sets' must be a mapping such as {{imagenet-v2: {{pool: imagenet-v2}}}}")
    for name, spec in test_sets.items():
        if not isinstance(name, str) or not TEST_SET_NAME.fullmatch(name) or name in SPLIT_NAMES:
            raise ConfigError(f"{where}: test set name {name!r} must be lower-case letters, digits, '.', '_' or '-' "
                              f"and not one of {', '.join(SPLIT_NAMES)}")
        if not isinstance(spec, dict) or "pool" not in spec:
            raise ConfigError(f"{where}: test set {name!r} needs a 'pool' (e.g. {{pool: {name}}})")
        _unknown_keys(set(spec), SPLIT_KEYS, f"{where} test_sets.{name}")
    return dict(test_sets)


def parse_task(data: dict[str, Any], path: str) -> TaskSpec:
    """Validate a task mapping strictly and build its TaskSpec."""
    _unknown_keys(set(data), TASK_KEYS, path)
    for key in ("name", "version", "dataset", "splits", "protocols"):
        if key not in data:
            raise ConfigError(f"{path}: missing required key {key!r}")
    dataset = data["dataset"]
    if not isinstance(dataset, dict) or "source" not in dataset:
        raise ConfigError(f"{path}: 'dataset' needs a 'source' (e.g. {{source: bundled, name: fashion-mnist-mini}})")
    suites = data.get("suites", [])
    preprocess = data.get("preprocess") or {}
    if not isinstance(preprocess, dict):
        raise ConfigError(f"{path}: 'preprocess' must be a mapping such as {{resize: 224, crop: false}}")
    _unknown_keys(set(preprocess), PREPROCESS_KEYS, f"{path} preprocess")
    if preprocess.get("crop", False) is not False:
        raise ConfigError(f"{path}: preprocess.crop can only be false (the encoder's own crop is the default)")
    if "resize" in preprocess and (not isinstance(preprocess["resize"], int) or preprocess["resize"] <= 0):
        raise ConfigError(f"{path}: preprocess.resize must be a positive integer, got {preprocess['resize']!r}")
    return TaskSpec(
        name=str(data["name"]),
        version=str(data["version"]),
        description=str(data.get("description", "")).strip(),
        suites=tuple([suites] if isinstance(suites, str) else suites),
        source=dataset["source"],
        source_options={k: v for k, v in dataset.items() if k != "source"},
        splits=_check_splits(data["splits"], path),
        protocols=_expand_protocols(data["protocols"], path),
        path=path,
        citation=str(data.get("citation", "")).strip(),
        license=str(data.get("license", "")).strip(),
        group=str(data.get("group", "")),
        preprocess=dict(preprocess),
        test_sets=_check_test_sets(data.get("test_sets"), path),
        metric=_check_metric(data.get("metric", "top1"), path),
    )


def _check_metric(metric: Any, where: str) -> str:
    if metric not in HEADLINE_METRICS:
        raise ConfigError(f"{where}: metric {metric!r} is not one of {', '.join(HEADLINE_METRICS)}")
    return str(metric)


def load_task_file(path: Path) -> TaskSpec:
    return parse_task(_read_yaml(path), str(path))


def task_dirs() -> list[Path]:
    """Built-in tasks first, then directories listed in $EVALBENCH_TASKS (os.pathsep separated)."""
    dirs = [Path(str(resources.files("evalbench.builtin_tasks")))]
    extra = os.environ.get("EVALBENCH_TASKS", "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return dirs


@lru_cache(maxsize=8)
def _registry(dirs: tuple[Path, ...]) -> dict[str, TaskSpec]:
    tasks: dict[str, TaskSpec] = {}
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"task directory {d} does not exist (check $EVALBENCH_TASKS)")
        # files whose name starts with "_" are include-only fragments, not tasks
        for path in sorted(d.rglob("*.yaml")):
            if path.name.startswith("_"):
                continue
            spec = load_task_file(path)
            if spec.name in tasks:
                raise ConfigError(f"task name {spec.name!r} is defined twice: {tasks[spec.name].path} and {path}")
            tasks[spec.name] = spec
    return tasks


def list_tasks() -> dict[str, TaskSpec]:
    return dict(_registry(tuple(task_dirs())))


def list_suites() -> dict[str, list[str]]:
    suites: dict[str, list[str]] = {}
    for spec in list_tasks().values():
        for s in spec.suites:
            suites.setdefault(s, []).append(spec.name)
    return {k: sorted(v) for k, v in sorted(suites.items())}


def get_task(name: str) -> TaskSpec:
    tasks = list_tasks()
    if name not in tasks:
        raise UnknownNameError("task", name, tasks, hint="`evalbench tasks` lists them")
    return tasks[name]


def resolve_tasks(suite: Optional[str] = None, tasks: Optional[list[str]] = None) -> list[TaskSpec]:
    """The tasks a run covers: the suite's, narrowed to `tasks` when both are given."""
    if suite is None and not tasks:
        raise ConfigError("name a --suite, at least one --tasks entry, or --dataset SPEC (your own data)")
    if suite is not None:
        suites = list_suites()
        if suite not in suites:
            raise UnknownNameError("suite", suite, suites, hint="`evalbench suites` lists them")
        names = suites[suite]
        if tasks:
            outside = [t for t in tasks if t not in names]
            if outside:
                get_task(outside[0])  # unknown tasks get did-you-mean
                raise ConfigError(f"task {outside[0]!r} is not in suite {suite!r} (its tasks: {', '.join(names)})")
            names = [n for n in names if n in tasks]
    else:
        names = list(dict.fromkeys(tasks))
    return [get_task(n) for n in names]


# -- protocols chosen on the command line ------------------------------------------------------------

# command-line protocol options -> (protocol names they apply to, parameter name)
PROTOCOL_OPTIONS = {
    "shots": (("fewshot-linear", "fewshot-knn", "episodic-centroid", "episodic-logreg"), "shots"),
    "fewshot_seeds": (("fewshot-linear", "fewshot-knn"), "seeds"),
    "episodes": (("episodic-centroid", "episodic-logreg"), "episodes"),
    "ways": (("episodic-centroid", "episodic-logreg"), "ways"),
}


def _overrides(protocol: str, options: dict[str, Any]) -> dict[str, Any]:
    return {param: options[opt] for opt, (names, param) in PROTOCOL_OPTIONS.items()
            if options.get(opt) is not None and protocol in names}


def _entries_for(token: str, task: TaskSpec, registered: dict[str, str], options: dict[str, Any]) -> list[ProtocolEntry]:
    matches = [e for e in task.protocols if e.id == token] or [e for e in task.protocols if e.name == token]
    name = matches[0].name if matches else token
    extra = _overrides(name, options)
    if matches and not extra:
        return matches
    if name in registered:
        base = {k: v for k, v in (matches[0].params if matches else {}).items() if k not in extra}
        return list(_expand_protocols([{"name": name, **base, **extra}], task.path))
    shot = re.fullmatch(r"(.+)-(\d+)shot", token)  # a result id such as fewshot-linear-5shot
    if shot and shot.group(1) in registered and "shots" in _overrides(shot.group(1), {"shots": 1}):
        extra = {**_overrides(shot.group(1), options), "shots": int(shot.group(2))}
        return list(_expand_protocols([{"name": shot.group(1), **extra}], task.path))
    raise UnknownNameError("protocol", token, set(registered) | {e.id for e in task.protocols})


def select_protocols(task: TaskSpec, requested: Optional[list[str]] = None,
                     options: Optional[dict[str, Any]] = None) -> tuple[ProtocolEntry, ...]:
    """The protocol entries to run on `task`: its YAML list, or the ids / names asked for.

    A requested name is first looked up among the task's entries (by id, then by protocol name);
    any other registered protocol runs with its defaults (`fewshot-linear-5shot` with 5 shots).
    `options` (shots, fewshot_seeds, episodes, ways) override the matching parameters; a list of
    shots gives one entry per K, with the ids a task YAML would give them (fewshot-linear-5shot),
    so results keep their usual names.

    Raises:
        UnknownNameError: a name that is neither the task's nor a registered protocol.
    """
    from .protocols import list_protocols

    registered = list_protocols()
    out: list[ProtocolEntry] = []
    for token in dict.fromkeys(requested or [e.name for e in task.protocols]):
        out += _entries_for(token, task, registered, options or {})
    ids = list(dict.fromkeys(e.id for e in out))
    return tuple(next(e for e in out if e.id == i) for i in ids)


# -- ad-hoc tasks from a dataset spec (`run --dataset`, `task new`) ----------------------------------

ADHOC_PROTOCOLS = ("linear", "knn")
SINGLE_POOL_CUT = {"train": 0.8, "test": 0.2}


def default_splits(pools: list[str], where: str) -> tuple[dict[str, Any], str]:
    """The split block for the pools a source found, and a sentence saying what it means.

    train + test (+ val): used as found. train + val only: val is the test split (ImageNet style).
    One pool: a seeded, stratified 80/20 cut. Without val, the linear probe picks C on a seeded,
    stratified 10% hold-out of train (its holdout_fraction), as the full Fashion-MNIST task does.
    """
    if "train" in pools and "test" in pools:
        names = [p for p in SPLIT_NAMES if p in pools]
        note = "splits as found" + ("" if "val" in pools else "; C on a seeded 10% hold-out of train")
        return {p: {"pool": p} for p in names}, note
    if "train" in pools and "val" in pools:
        return ({"train": {"pool": "train"}, "test": {"pool": "val"}},
                "no test split: val is the test split; C on a seeded 10% hold-out of train")
    if len(pools) == 1:
        return ({"partition": {"pool": pools[0], "seed": 0, "sizes": dict(SINGLE_POOL_CUT)}},
                "one pool cut 80/20 into train/test, stratified, seed 0; C on a seeded 10% hold-out of train")
    raise ConfigError(f"{where}: found splits {', '.join(pools)}; a task needs train and test (or train and val, "
                      "or a single pool to cut)")


def dataset_task_mapping(spec: str, name: Optional[str] = None, data_root: Optional[str] = None,
                         protocols: Optional[list[Any]] = None) -> dict[str, Any]:
    """The task YAML mapping for a --dataset SPEC (what `task new` writes and `run --dataset` runs)."""
    from .data import make_source
    from .data.spec import parse_dataset_spec

    kind, options, default_name = parse_dataset_spec(spec, data_root)
    source = make_source(kind, options, data_root=data_root)
    splits, note = default_splits(source.pool_names(), spec)
    return {"name": name or default_name, "version": 1,
            "description": f"Your own data from --dataset {spec} ({note}).",
            "dataset": {"source": kind, **options}, "splits": splits,
            "protocols": list(protocols or ADHOC_PROTOCOLS)}


def dataset_task(spec: str, name: Optional[str] = None, data_root: Optional[str] = None) -> TaskSpec:
    """An ad-hoc task for a --dataset SPEC, validated as a task file would be.

    Raises:
        DataUnavailableError / ConfigError: not a dataset, a layout or list error (one line).
    """
    return parse_task(dataset_task_mapping(spec, name, data_root), f"--dataset {spec}")


def write_task_yaml(mapping: dict[str, Any], directory: Optional[str], force: bool = False) -> Path:
    """Write a task mapping as DIR/<name>.yaml (DIR: the first $EVALBENCH_TASKS entry by default).

    Raises:
        ConfigError: no directory, a file already there (without force), a name a registered task has.
    """
    if directory is None:
        first = [p for p in os.environ.get("EVALBENCH_TASKS", "").split(os.pathsep) if p]
        if not first:
            raise ConfigError("task new: pass --dir DIR or set $EVALBENCH_TASKS (where `evalbench run` finds your tasks)")
        directory = first[0]
    path = Path(directory).expanduser() / f"{mapping['name']}.yaml"
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it")
    parse_task(mapping, str(path))  # never write a file the registry would refuse
    clash = _registry(tuple(d for d in task_dirs() if d.is_dir())).get(mapping["name"])
    if clash is not None and Path(clash.path).resolve() != path.resolve():
        raise ConfigError(f"a task named {mapping['name']!r} already exists ({clash.path}); choose another NAME")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `evalbench task new`; edit freely (schema: README 'Tasks and data').\n"
              "# Change `version` whenever a change would change the numbers, so old results are not reused.\n"
              "# Relative paths are looked for under --data-root / $EVALBENCH_DATA, then the current folder.\n")
    path.write_text(header + yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    _registry.cache_clear()
    return path
