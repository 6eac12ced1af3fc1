"""Real benchmark features, extracted by evalbench itself into its feature cache (reused on later runs)."""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from evalbench.adapters import load_encoder  # noqa: E402
from evalbench.cache import FeatureCache, default_cache_dir  # noqa: E402
from evalbench.data.ragged import per_image  # noqa: E402
from evalbench.data.task_preprocess import effective_preprocess  # noqa: E402
from evalbench.extract import feature_choices  # noqa: E402
from evalbench.protocols.contract import FeatureSplit, FeatureSplits  # noqa: E402
from evalbench.runner import RunContext, RunSummary, extract_splits, plan_tasks  # noqa: E402
from evalbench.tasks import resolve_tasks  # noqa: E402


@dataclass(frozen=True)
class RealSet:
    """One benchmark set: a model spec on a registered task, optionally cut to the first n train / test rows."""

    name: str
    model: str
    task: str
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    model_options: tuple = ()


#: The sets the linear benchmarks run on (names for --sets).
SETS = {
    "effnet-fmnist-mini": RealSet("effnet-lite0 / fashion-mnist-mini", "effnet-lite0", "fashion-mnist-mini"),
    "pixels-fmnist-4k": RealSet("pixels 28x28 / Fashion-MNIST 4k", "pixels:28", "fashion-mnist", 4000, 1000,
                                (("grayscale", True),)),
    "effnet-digits": RealSet("effnet-lite0 / digits", "effnet-lite0", "digits"),
    "effnet-fmnist-10k": RealSet("effnet-lite0 / Fashion-MNIST 10k", "effnet-lite0", "fashion-mnist", 10000, 2000),
}


def _first(split: FeatureSplit, n: Optional[int]) -> FeatureSplit:
    return split if n is None else FeatureSplit(np.ascontiguousarray(split.X[:n]), split.y[:n])


def load_set(spec: RealSet, cache_dir: Optional[str] = None, batch_size: int = 64) -> FeatureSplits:
    """The set's train/val/test features from evalbench's cache ($EVALBENCH_HOME/cache unless given),
    extracting what is missing the way `evalbench run` does (same cache keys, so runs share them)."""
    encoder = load_encoder(spec.model, **dict(spec.model_options))
    summary = RunSummary()
    plan = plan_tasks(resolve_tasks(tasks=[spec.task]), None, None, False, summary)[0]
    if spec.n_train is not None or spec.n_test is not None:  # extract only the rows the set uses
        cut = {"train": spec.n_train, "test": spec.n_test}
        plan = dataclasses.replace(plan, splits={k: (pool, idx if cut.get(k) is None else idx[:cut[k]])
                                                 for k, (pool, idx) in plan.splits.items()})
    ctx = RunContext(output=Path("."), cache=FeatureCache(cache_dir or default_cache_dir()), batch_size=batch_size,
                     seed=0, force=False, summary=summary)
    preprocess = per_image(effective_preprocess(encoder.preprocess, plan.task.preprocess))
    choice = feature_choices(encoder, encoder.name)[0]
    feats = extract_splits(encoder, preprocess, [choice], plan, ctx)
    parts = {k: FeatureSplit(np.array(v[choice.key].features), np.asarray(v[choice.key].labels)) for k, v in feats.items()}
    return FeatureSplits(train=_first(parts["train"], spec.n_train), test=_first(parts["test"], spec.n_test),
                         val=parts.get("val"), num_classes=plan.num_classes)
