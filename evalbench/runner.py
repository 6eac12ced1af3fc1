"""The only module that wires encoders, data, the feature cache and protocols together."""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from .adapters import load_encoder
from .adapters.base import Encoder, Preprocess, check_encoder
from .cache import FeatureCache, probe_writable
from .data import DataSource, ImagePool, make_source
from .data.ragged import per_image
from .data.splits import resolve_splits, resolve_test_sets
from .data.task_preprocess import effective_preprocess
from .distributed import SINGLE, DistContext, init_distributed, place_encoder, resolve_device, shutdown
from .errors import ConfigError, DataUnavailableError
from .extract import FeatureChoice, call_encoder, default_num_workers, extract_features, feature_choices
from .protocols import Protocol, get_protocol
from .protocols.contract import FeatureSplit, FeatureSplits
from .results import (ModelInfo, ProtocolInfo, ResultRecord, RunRequest, TaskInfo, canonical_digest, environment,
                      read_result, result_path, slugify)
from .scoring import intervals
from .tasks import ProtocolEntry, TaskSpec, dataset_task, resolve_tasks, select_protocols

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """Counts the CLI prints after a run."""

    extracted: int = 0
    reused: int = 0
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # tasks left out for lack of data (--allow-missing)
    notes: list[str] = field(default_factory=list)  # one-line notices (a model renamed to avoid a collision)
    rank: int = 0  # this process's rank under torchrun (only rank 0 runs protocols and writes results)


@dataclass(frozen=True)
class PlannedProtocol:
    """One protocol to run on a task: its YAML entry (id, params) and the validated protocol."""

    entry: ProtocolEntry
    protocol: Protocol


@dataclass(frozen=True)
class TaskPlan:
    """A task with its data loaded and its splits resolved, checked before any extraction starts."""

    task: TaskSpec
    source: DataSource
    pools: dict[str, ImagePool]
    splits: dict[str, tuple[str, np.ndarray]]  # split name -> (pool name, sample indices)
    protocols: list[PlannedProtocol]
    test_sets: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # extra test sets the data has

    @property
    def num_classes(self) -> int:
        return len(next(iter(self.pools.values())).classes)

    def task_info(self) -> TaskInfo:
        """The task as run (its test split)."""
        t = self.task
        # own-data sources add where the data was read and a digest of its listing (not cache-key material)
        provenance = getattr(self.source, "provenance", None)
        dataset = {**self.source.identity(), **(provenance() if callable(provenance) else {})}
        definition = {**t.splits, "test_sets": t.test_sets} if t.test_sets else t.splits
        return TaskInfo(name=t.name, version=t.version, dataset=dataset,
                        splits={k: int(len(idx)) for k, (_, idx) in self.splits.items()},
                        split_definition=definition, num_classes=self.num_classes, file=Path(t.path).name,
                        group=t.group or None, suites=tuple(t.suites), metric=t.metric)

    def test_set_info(self, task: TaskInfo, name: str) -> TaskInfo:
        """`task` (from task_info) as scored on the extra test set `name`: its size is the `test` count."""
        return dataclasses.replace(task, splits={**task.splits, "test": int(len(self.test_sets[name][1]))}, test_set=name)

    def split_pools(self) -> dict[str, tuple[str, np.ndarray]]:
        """Every split whose features a run needs: train / val / test, then `@name` per extra test set."""
        return {**self.splits, **{f"@{name}": where for name, where in self.test_sets.items()}}


@dataclass
class RunContext:
    """Where results and features go and the run-wide settings, shared by every task of a run."""

    output: Path
    cache: FeatureCache
    batch_size: int
    seed: int
    force: bool
    summary: RunSummary
    progress: Any = None  # a running rich Progress, or None
    environment: dict[str, Any] = field(default_factory=dict)  # collected once, at the first record
    num_workers: int = 0  # DataLoader workers for extraction (0: in process)
    device: Optional[str] = None  # --device for the probes that take one (None: their own default)
    dist: DistContext = SINGLE  # under torchrun: this rank; extraction is split, protocols run on rank 0
    report_every: Optional[float] = None  # seconds between plain progress lines (logs), None: none

    def env(self, device: str) -> dict[str, Any]:
        if not self.environment:
            self.environment.update(environment(device))
        return self.environment


@dataclass(frozen=True)
class ModelUnderTest:
    """One feature choice of the encoder under evaluation, with the name and slug its results carry."""

    spec: str
    choice: FeatureChoice
    name: str
    preprocess: Preprocess
    provenance: Optional[dict[str, Any]]

    @property
    def slug(self) -> str:
        return slugify(self.name)

    def info(self, task: TaskSpec) -> ModelInfo:
        """The model as run on `task` (with the task's preprocessing override, if any)."""
        own = self.preprocess.to_dict()
        effective = effective_preprocess(self.preprocess, task.preprocess).to_dict()
        return ModelInfo(name=self.name, fingerprint=self.choice.fingerprint, preprocess=effective, spec=self.spec,
                         slug=self.slug, preprocess_override=dict(task.preprocess) or None,
                         base_preprocess=own if task.preprocess else None, provenance=self.provenance)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class _NullProgress:
    """Stands in for rich's Progress when progress display is off."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool, console=None):
    if not enabled:
        return _NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


def evaluate(
    model: Union[str, Encoder],
    suite: Optional[str] = None,
    tasks: Optional[list[str]] = None,
    *,
    output: Union[str, Path] = "results",
    cache_dir: Union[str, Path, None] = None,
    data_root: Optional[str] = None,
    protocols: Optional[list[str]] = None,
    batch_size: int = 64,
    seed: int = 0,
    force: bool = False,
    name: Optional[str] = None,
    progress: bool = True,
    console=None,
    summary: Optional[RunSummary] = None,
    allow_missing: bool = False,
    dataset: Union[str, list[str], None] = None,
    task_name: Optional[str] = None,
    protocol_options: Optional[dict[str, Any]] = None,
    num_workers: Optional[int] = None,
    device: Optional[str] = None,
    report_every: Optional[float] = None,
    **model_options: Any,
) -> pd.DataFrame:
    """Evaluate one encoder on a suite or a list of tasks; write one result JSON per (task, protocol).

    Args:
        model: a model spec (see `load_encoder`) or an Encoder object (never modified).
        suite / tasks: what to run; `tasks` narrows a suite or stands alone.
        output: results directory; records go to output/<model>/<task>/<protocol>.json.
        cache_dir: feature cache root (default $EVALBENCH_HOME/cache or the XDG cache).
        data_root: where datasets that are not bundled live.
        protocols: run only these protocol ids or names; any registered protocol runs on any task
            (with its defaults and `protocol_options`), not only those its YAML lists.
        force: recompute results even when a matching record exists (features still come from the cache).
        name: the model's name in results and leaderboards (default: the encoder's own). A name whose
            results directory holds another model's results is refused.
        allow_missing: score the tasks whose data is here and list the others in summary.missing,
            instead of refusing the whole run.
        dataset: your own data, one spec or several: an image folder, "list:FILE.csv" or "hf:ID"
            (evalbench.data.spec); each runs as an ad-hoc task (data-<name>, linear and knn).
        task_name: the ad-hoc task's name (one dataset only).
        protocol_options: shots (int or list), fewshot_seeds, episodes, ways: parameters of the
            few-shot and episodic protocols (evalbench.tasks.PROTOCOL_OPTIONS).
        num_workers: DataLoader workers reading and preprocessing images (default: from the CPU
            count, `extract.default_num_workers`; 0: in this process). Features do not depend on it.
        device: auto, cpu, cuda or cuda:N for extraction (encoders built on a torch module) and for
            the probes that take a device (linear). Default: CUDA when available. Under torchrun
            each rank takes its local GPU and extracts its share of every split; rank 0 runs the
            protocols and writes the results.
        report_every: seconds between plain progress lines on stderr (for logs); None: none.
        **model_options: passed to `load_encoder` (arch, random_init, input_size, ...).

    Returns:
        One row per (task, protocol) with the metrics and the result path.

    Raises:
        EvalbenchError: unknown names, missing data or checkpoints, a name taken by another model, a batch
            size or seed out of range, an output or cache directory that cannot be written, a data root
            that does not exist: before anything is computed.
    """
    task_specs = _task_specs(suite, tasks, dataset, task_name, data_root)
    check_run_settings(output, cache_dir, data_root, batch_size, seed)  # before the model loads: nothing is lost
    # join torchrun's group first: each rank then builds its model on its own GPU, not all on GPU 0
    dist = init_distributed(device or "auto")
    if isinstance(model, str):
        spec, encoder = model, load_encoder(model, **model_options)
    else:
        spec = getattr(model, "spec", None) or f"object:{type(model).__module__}.{type(model).__qualname__}"
        encoder = check_encoder(model, "the encoder object")
    summary = summary if summary is not None else RunSummary()
    summary.rank = dist.rank
    if device is not None or dist.active:
        place_encoder(encoder, resolve_device(device, dist.local_rank))
    # Check every task's data and protocol settings before any extraction, so a mistake in the
    # last task does not surface after an hour of work.
    plans = plan_tasks(task_specs, protocols, data_root, allow_missing, summary, protocol_options)
    ctx = RunContext(output=Path(output), cache=FeatureCache(cache_dir), batch_size=batch_size, seed=seed, force=force,
                     summary=summary, num_workers=default_num_workers() if num_workers is None else num_workers,
                     device=device, dist=dist, report_every=report_every)
    models = [ModelUnderTest(spec, choice, choice.name, encoder.preprocess, _provenance(encoder))
              for choice in feature_choices(encoder, name or encoder.name)]
    models = [_claim_name(m, ctx, explicit=bool(name)) for m in models]
    rows = []
    try:
        with _progress(progress and dist.is_main, console) as bar:
            ctx.progress = bar
            for plan in plans:
                rows += _run_task(encoder, models, plan, ctx)
    finally:
        shutdown(dist)
    return pd.DataFrame(rows)


def _task_specs(suite: Optional[str], tasks: Optional[list[str]], dataset: Union[str, list[str], None],
                task_name: Optional[str], data_root: Optional[str]) -> list[TaskSpec]:
    """The registered tasks asked for, then one ad-hoc task per --dataset spec."""
    specs = [dataset] if isinstance(dataset, str) else list(dataset or [])
    if task_name and len(specs) != 1:
        raise ConfigError("--task-name names the task of one --dataset; give exactly one")
    named = resolve_tasks(suite, tasks) if (suite or tasks or not specs) else []
    return named + [dataset_task(s, task_name, data_root) for s in specs]


def check_run_settings(output: Union[str, Path], cache_dir: Union[str, Path, None], data_root: Optional[str],
                       batch_size: Any, seed: Any) -> None:
    """Refuse settings that would fail later, after work: numbers out of range, an output or cache directory that
    cannot be written (a probe file is written and removed in each), a data root that does not exist."""
    for option, value, low in (("--batch-size", batch_size, 1), ("--seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            kind = "a positive" if low else "a non-negative"
            raise ConfigError(f"{option} must be {kind} integer, got {value!r}")
    probe_writable(output, "--output")
    FeatureCache(cache_dir).check_writable()
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        what = "is a file, not a directory" if Path(data_root).expanduser().exists() else "does not exist"
        raise DataUnavailableError(f"--data-root {data_root} {what}; pass the directory that holds the datasets "
                                   "(`evalbench tasks --data-root DIR` shows what each task finds there), or leave it out")


def _missing_data_message(missing: list[tuple[str, str]], task_specs: list[TaskSpec]) -> str:
    """One short line for tasks without data: how many, which, what can run, where to look (never every task's reason)."""
    names = [name for name, _ in missing]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    runnable = len(task_specs) - len(missing)
    can = (f"{runnable} can run: pass --allow-missing to score them" if runnable
           else "none can run (--allow-missing would score nothing)")
    by_name = {t.name: t for t in task_specs}
    if any("vtab" in by_name[n].suites for n in names):
        where = ("`evalbench data status vtab --data-root DIR` shows what each needs, "
                 "`evalbench data prepare vtab --root DIR` fetches what can be fetched")
    else:
        where = f"first: {missing[0][1]}"
    return f"{len(missing)} of {len(task_specs)} tasks have no data here ({shown}); {can}; {where}"


def plan_tasks(task_specs: list[TaskSpec], protocols: Optional[list[str]], data_root: Optional[str],
               allow_missing: bool, summary: RunSummary,
               protocol_options: Optional[dict[str, Any]] = None) -> list[TaskPlan]:
    """Load every task's data, resolve its splits and validate its protocols; refuse missing data unless allowed."""
    plans, missing = [], []
    for task in task_specs:
        source = make_source(task.source, task.source_options, data_root=data_root)
        try:
            pools = source.load()
            # a subset list naming images the copy lacks is missing data too (--allow-missing skips the task)
            splits = resolve_splits(task.splits, pools, task.path)
        except DataUnavailableError as exc:
            missing.append((task.name, str(exc)))
            continue
        test_sets, absent = resolve_test_sets(task.test_sets, pools)
        if absent:
            summary.notes.append(f"{task.name}: test set(s) {', '.join(absent)} not found in the data, skipped "
                                 f"(`evalbench data status` shows what is found)")
        entries = select_protocols(task, protocols, protocol_options)
        planned = [PlannedProtocol(e, get_protocol(e.name, e.params)) for e in entries]
        _check_multilabel_support(task, pools, planned)
        plans.append(TaskPlan(task, source, pools, splits, planned, test_sets))
    if missing and not allow_missing:
        if len(missing) == 1 and len(task_specs) == 1:
            raise DataUnavailableError(missing[0][1])
        raise DataUnavailableError(_missing_data_message(missing, task_specs))
    summary.missing.extend(name for name, _ in missing)
    return plans


def _check_multilabel_support(task: TaskSpec, pools: dict[str, ImagePool], planned: list[PlannedProtocol]) -> None:
    """Refuse, before any extraction, a protocol that cannot take a multi-label task's (N, K) labels."""
    if not any(np.ndim(pool.labels) == 2 for pool in pools.values()):
        return
    for p in planned:
        if not p.protocol.accepts_multilabel:
            raise ConfigError(f"protocol {p.entry.id!r} cannot score {task.name}: its labels are multi-label (several "
                              "classes per image); run `linear` (one-vs-rest logistic regression, 11-point mAP)")


def _provenance(encoder: Encoder) -> Optional[dict[str, Any]]:
    """Facts that change neither features nor scores (checkpoint file, layout), from the optional `provenance()`."""
    method = getattr(encoder, "provenance", None)
    return (dict(call_encoder(encoder, "provenance")) or None) if callable(method) else None


def _claim_name(model: ModelUnderTest, ctx: RunContext, explicit: bool) -> ModelUnderTest:
    """The model with a name whose results directory holds no other model's results.

    Same weights, feature choice and own preprocessing = same model: its directory is reused. A
    derived name taken by another model gets a short identity suffix (two DINO `checkpoint.pth`
    files of different runs); a name the user chose with --name is refused instead.
    """
    own = model.preprocess.to_dict()
    if not _taken_by_other(ctx.output / model.slug, model.choice.fingerprint, own):
        return model
    if explicit:
        raise ConfigError(f"--name {model.name}: {ctx.output / model.slug} holds results of another model (other weights, "
                          "feature choice or preprocessing); choose another --name or --output")
    suffix = canonical_digest({"fingerprint": model.choice.fingerprint, "preprocess": own})[:8]
    renamed = ModelUnderTest(model.spec, model.choice, f"{model.name}-{suffix}", model.preprocess, model.provenance)
    if _taken_by_other(ctx.output / renamed.slug, model.choice.fingerprint, own):
        raise ConfigError(f"{ctx.output / renamed.slug} holds results of another model; pass --name or another --output")
    note = (f"{ctx.output / model.slug} holds results of other weights under the name {model.name!r}; "
            f"this model's results go to {ctx.output / renamed.slug} (pass --name to choose)")
    log.info(note)
    ctx.summary.notes.append(note)
    return renamed


def _taken_by_other(model_dir: Path, fingerprint: dict[str, Any], own_preprocess: dict[str, Any]) -> bool:
    """True when `model_dir` holds a result record of a different model."""
    if not model_dir.is_dir():
        return False
    for path in sorted(model_dir.glob("*/*.json")):
        record = read_result(path)
        if record is not None and not record.model.same_model(fingerprint, own_preprocess):
            return True
    return False


def _record_paths(plan: TaskPlan, planned: PlannedProtocol, ctx: RunContext, slug: str) -> dict[Optional[str], Path]:
    """Where a protocol's records go: None -> the test split's, then one per extra test set it scores."""
    paths: dict[Optional[str], Path] = {None: result_path(ctx.output, slug, plan.task.name, planned.entry.id)}
    if planned.protocol.scores_test_sets:
        for name in plan.test_sets:
            paths[name] = result_path(ctx.output, slug, plan.task.name, f"{planned.entry.id}@{name}")
    return paths


def _run_task(encoder: Encoder, models: list[ModelUnderTest], plan: TaskPlan, ctx: RunContext) -> list[dict[str, Any]]:
    """Reuse the task's current records; extract what the rest need (every feature choice in one pass); run them."""
    rows, todo = [], []
    task_info = plan.task_info()
    content = task_info.dataset.get("content_sha256")
    for m in models:
        info, runs = m.info(plan.task), []
        for p in plan.protocols:
            paths = _record_paths(plan, p, ctx, m.slug)
            existing = {k: None if ctx.force else read_result(path) for k, path in paths.items()}
            request = RunRequest(info.fingerprint, info.preprocess, plan.task.version, p.protocol.name,
                                 p.protocol.version, p.entry.params, ctx.seed)
            # one fit scores the test split and every extra test set: reuse all of its records or none
            if all(r is not None and r.answers(request) and r.task.dataset.get("content_sha256") == content
                   for r in existing.values()):
                ctx.summary.skipped += [f"{plan.task.name}/{path.stem}" for path in paths.values()]
                rows += [r.row("reused") for r in existing.values()]
            else:
                runs.append((p, paths))
        if runs:
            todo.append((m, runs))
    if not todo:
        return rows
    t0 = time.perf_counter()
    # own-data pools hand over images of different sizes as ragged batches: preprocess them per size
    preprocess = per_image(effective_preprocess(encoder.preprocess, plan.task.preprocess))
    feats = extract_splits(encoder, preprocess, [m.choice for m, _ in todo], plan, ctx)
    extract_s = time.perf_counter() - t0
    if not ctx.dist.is_main:  # the other ranks only help extract
        return rows
    for m, runs in todo:
        splits = {name: per_choice[m.choice.key] for name, per_choice in feats.items()}
        fsplits = _feature_splits(plan, splits)
        for p, paths in runs:
            _announce_cost(p, fsplits, ctx.device)
            scored = fsplits if p.protocol.scores_test_sets else dataclasses.replace(fsplits, test_sets={})
            written = write_protocol_records(_on_device(p, ctx.device), scored, m.info(plan.task), plan, task_info, ctx,
                                             paths, cache_keys={k: v.key for k, v in splits.items()}, extract_s=extract_s,
                                             device=str(getattr(encoder, "device", "cpu")))
            for record in written:
                ctx.summary.computed.append(f"{plan.task.name}/{record.path.stem}")
                rows.append(record.row("computed"))
    return rows


def _feature_splits(plan: TaskPlan, splits: dict[str, Any]) -> FeatureSplits:
    """The protocols' view of a task's features, loaded into RAM once (protocols read every row many times)."""
    def loaded(key: str, pool_name: Optional[str] = None) -> FeatureSplit:
        subset = getattr(plan.pools[pool_name], "class_subset", None) if pool_name else None
        return FeatureSplit(np.array(splits[key].features), splits[key].labels,
                            None if subset is None else np.asarray(subset, dtype=np.int64))

    return FeatureSplits(train=loaded("train"), test=loaded("test", plan.splits["test"][0]),
                         val=loaded("val") if "val" in splits else None, num_classes=plan.num_classes,
                         test_sets={name: loaded(f"@{name}", pool) for name, (pool, _) in plan.test_sets.items()})


def write_protocol_records(planned: PlannedProtocol, fsplits: FeatureSplits, model: ModelInfo, plan: TaskPlan,
                           task_info: TaskInfo, ctx: RunContext, paths: dict[Optional[str], Path],
                           cache_keys: dict[str, str], extract_s: float, device: str) -> list[ResultRecord]:
    """Run one protocol (one fit) and write its record for the test split and one per extra test set; each
    record lists the cache keys of the features it read (train / val, and its own test split)."""
    def keys(test_key: str) -> dict[str, str]:
        return {k: v for k, v in cache_keys.items() if not k.startswith("@") and k != "test" or k == test_key}

    record, predictions, extra = run_protocol(planned, fsplits, model, task_info, ctx, cache_keys=keys("test"),
                                              extract_s=extract_s, device=device, test_index=plan.splits["test"][1])
    written = [record.write(paths[None], predictions)]
    for name, outcome in extra.items():
        preds = dict(outcome.predictions)
        if preds:
            preds.update(y_true=fsplits.test_sets[name].y.astype(np.int64),
                         test_index=np.asarray(plan.test_sets[name][1], dtype=np.int64))
        rec = dataclasses.replace(
            record, task=plan.test_set_info(task_info, name), metrics=outcome.metrics, cache_keys=keys(f"@{name}"),
            details={"fit": f"shared with {paths[None].name}: the same fitted probe scored on test set {name}"},
            uncertainty=intervals(preds, outcome.metrics, seed=ctx.seed))
        written.append(rec.write(paths[name], preds))
    return written


def extract_splits(encoder: Encoder, preprocess: Preprocess, choices: list[FeatureChoice], plan: TaskPlan,
                   ctx: RunContext) -> dict[str, dict]:
    """Features of every split of a task for every choice: {split: {choice key: CachedFeatures}}."""
    feats = {}
    for split_name, (pool_name, idx) in plan.split_pools().items():
        pool = plan.pools[pool_name]
        identity = {**plan.source.identity(), "pool": pool_name, "pool_sha256": pool.digest()}
        got = extract_features(encoder, preprocess, choices, pool, idx, identity, ctx.cache,
                               batch_size=ctx.batch_size, progress=ctx.progress,
                               description=f"extract {plan.task.name}/{split_name}", num_workers=ctx.num_workers,
                               dist=ctx.dist, report_every=ctx.report_every)
        # images run through the encoder (one pass serves every choice) and feature rows read back
        ctx.summary.extracted += max(f.extracted for f in got.values())
        ctx.summary.reused += sum(len(idx) - f.extracted for f in got.values())
        feats[split_name] = got
    return feats


def _on_device(planned: PlannedProtocol, device: Optional[str]) -> PlannedProtocol:
    """The protocol with --device applied when it takes a device (its YAML entry, and so the reuse
    of existing results, unchanged)."""
    proto = planned.protocol
    if device is None or "device" not in proto.params or proto.params["device"] == device:
        return planned
    return PlannedProtocol(planned.entry, get_protocol(planned.entry.name, {**planned.entry.params, "device": device}))


#: A linear probe on CPU estimated to take longer than this says so before it starts.
ANNOUNCE_PROBE_S = 600


def _announce_cost(planned: PlannedProtocol, splits: FeatureSplits, device: Optional[str]) -> None:
    """Warn up front when a C search on the CPU will take long (ImageNet scale), rather than running silently for hours."""
    grid = planned.protocol.params.get("c_grid")
    if not grid or planned.protocol.params.get("C", 0) is not None:
        return
    from .dryrun import linear_probe_seconds, matmul_flops_per_s

    dev = planned.protocol.params.get("device") if device is None else device
    if resolve_device(dev).type != "cpu":
        return
    n = splits.train.X.shape[0] + (splits.val.X.shape[0] if splits.val is not None else 0)
    cost = n * splits.train.X.shape[1] * splits.num_classes * (len(grid) + int(planned.protocol.params.get("bisection_steps", 0)) + 1)
    seconds = linear_probe_seconds(cost, matmul_flops_per_s("cpu"))
    if seconds > ANNOUNCE_PROBE_S:
        log.warning("%s on CPU: n x d x classes x fits = %.3g; roughly %.1f h on this machine; "
                    "--device cuda runs it on a GPU", planned.entry.id, cost, seconds / 3600)


def run_protocol(planned: PlannedProtocol, splits: FeatureSplits, model: ModelInfo, task: TaskInfo, ctx: RunContext,
                 cache_keys: dict[str, str], extract_s: float, device: str,
                 test_index: np.ndarray) -> tuple[ResultRecord, dict[str, np.ndarray], dict[str, Any]]:
    """Fit and score one protocol on loaded features: the record it yields (not yet written), with its
    intervals, the per-item predictions to store beside it (test ids in the cache's order), and the
    outcomes of the extra test sets it scored with the same fit."""
    started, t1 = _now(), time.perf_counter()
    env = ctx.env(device)
    outcome = planned.protocol.evaluate(splits, seed=ctx.seed, progress=ctx.progress)
    proto = planned.protocol
    predictions = dict(outcome.predictions)
    if predictions and "episode_top1" not in predictions:
        predictions.update(y_true=splits.test.y.astype(np.int64), test_index=np.asarray(test_index, dtype=np.int64))
    record = ResultRecord(
        model=model, task=task,
        protocol=ProtocolInfo(id=planned.entry.id, name=proto.name, version=proto.version,
                              requested=planned.entry.params, params=outcome.params),
        metrics=outcome.metrics, details=outcome.details, seed=ctx.seed, cache_keys=cache_keys, environment=env,
        timing={"started": started, "finished": _now(), "extract_seconds": round(extract_s, 3),
                "protocol_seconds": round(time.perf_counter() - t1, 3)},
        uncertainty=intervals(predictions, outcome.metrics, seed=ctx.seed))
    return record, predictions, outcome.test_sets
