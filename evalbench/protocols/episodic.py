"""Episodic N-way K-shot protocols on the test split: nearest centroid (SimpleShot) and logreg (rfs)."""
from __future__ import annotations

from abc import ABC, abstractmethod

from typing import Any

import numpy as np
import torch

from .contract import FeatureSplits, ProtocolOutcome
from .batched_logreg import GTOL, MAX_NEWTON, fit_predict_logreg
from .knn import l2_normalize
from .metrics import mean_std_ci
from .protocol_base import Param, Protocol, Ticker, positive_float, positive_int
from .sampling import sample_episodes

_BATCH = 100  # episodes per vectorised centroid step: bounds memory at ~100*75*D floats
_LR_BATCH = 200  # episodes per batched Newton solve: Hessians are (ways*(ways*shots+1))^2 each


class _Episodic(Protocol, ABC):
    params_spec = (
        Param("ways", 5, positive_int),
        Param("shots", 1, positive_int),
        Param("queries", 15, positive_int),
        Param("episodes", 2000, positive_int),
    )

    @abstractmethod
    def _accuracies(self, splits, sup, qry, ticker) -> np.ndarray:
        """Per-episode query accuracy (fraction) for the sampled episodes."""

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        p = self.params
        _, sup, qry = sample_episodes(splits.test.y, p["ways"], p["shots"], p["queries"], p["episodes"], seed)
        ticker = Ticker(progress, f"{self.name} {p['ways']}-way {p['shots']}-shot", p["episodes"])
        acc = self._accuracies(splits, sup, qry, ticker)
        ticker.done()
        s = mean_std_ci(list(acc))
        params = dict(p)
        params.update(self._extra_params(), seed=seed,
                      episodes_from="test split; numpy default_rng(seed): classes then per-class "
                                    "rng.choice(shots+queries, no replacement), first `shots` = support")
        return ProtocolOutcome(metrics={"top1": s["mean"], "top1_ci95": s["ci95"], "top1_std": s["std"]},
                               params=params, details={"episode_top1_first_20": [float(a) for a in acc[:20]]},
                               predictions={"episode_top1": np.asarray(acc, dtype=np.float64)})  # percent

    def _extra_params(self) -> dict:
        return {}


class EpisodicCentroidProtocol(_Episodic):
    """SimpleShot: CL2N features, nearest class centroid by Euclidean distance."""

    name = "episodic-centroid"
    version = "1"
    description = "N-way K-shot episodes on test; nearest centroid after CL2N with the train mean (SimpleShot)"

    def _accuracies(self, splits, sup, qry, ticker) -> np.ndarray:
        mean = splits.train.X.astype(np.float64).mean(axis=0).astype(np.float32)
        Z = l2_normalize(splits.test.X.astype(np.float32) - mean)
        E, ways, queries = qry.shape
        out = np.empty(E)
        truth = np.repeat(np.arange(ways), queries)
        for start in range(0, E, _BATCH):
            sl = slice(start, start + _BATCH)
            cent = Z[sup[sl]].mean(axis=2)                       # (b, ways, D)
            q = Z[qry[sl]].reshape(cent.shape[0], ways * queries, -1)
            # Squared distance up to a per-query constant: |c|^2 - 2 q.c
            d = (cent ** 2).sum(-1)[:, None, :] - 2.0 * np.einsum("bqd,bwd->bqw", q, cent)
            pred = np.argmin(d, axis=2)                          # ties -> first way
            out[sl] = 100.0 * (pred == truth).mean(axis=1)
            ticker.advance(cent.shape[0])
        return out

    def _extra_params(self) -> dict:
        return {"classifier": "nearest centroid, Euclidean, on CL2N features",
                "cl2n_mean": "mean of the train split features",
                "reference": "SimpleShot (Wang et al. 2019), CL2N"}


class EpisodicLogRegProtocol(_Episodic):
    """rfs: multinomial logistic regression (C=1) on L2-normalised support features."""

    name = "episodic-logreg"
    version = "2"  # 2: exact optimum (batched Newton) instead of sklearn's tol=1e-4 stop
    description = "N-way K-shot episodes on test; logistic regression C=1 on L2-normalised features (rfs)"
    params_spec = _Episodic.params_spec + (Param("C", 1.0, positive_float),
                                           Param("max_iter", MAX_NEWTON, positive_int, "Newton steps per episode"))

    def _accuracies(self, splits, sup, qry, ticker) -> np.ndarray:
        Z = torch.from_numpy(l2_normalize(splits.test.X).astype(np.float64))
        E, ways, queries = qry.shape
        shots = sup.shape[2]
        ys = torch.arange(ways).repeat_interleave(shots)
        yq = torch.arange(ways).repeat_interleave(queries)
        out = np.empty(E)
        for start in range(0, E, _LR_BATCH):
            sl = slice(start, start + _LR_BATCH)
            s_idx = torch.from_numpy(sup[sl].reshape(-1, ways * shots))
            q_idx = torch.from_numpy(qry[sl].reshape(-1, ways * queries))
            pred = fit_predict_logreg(Z[s_idx], ys.expand(len(s_idx), -1), Z[q_idx], ways,
                                      C=self.params["C"], max_iter=self.params["max_iter"])
            out[sl] = 100.0 * (pred == yq).double().mean(dim=1).numpy()
            ticker.advance(len(s_idx))
        return out

    def _extra_params(self) -> dict:
        return {"classifier": "multinomial logistic regression (binary: sigmoid) on L2-normalised features, "
                              "scikit-learn's objective C*sum(logloss) + 0.5*||W||^2, bias unpenalised",
                "solver": f"batched float64 Newton on the span of the support set, to max|grad| <= {GTOL:g} "
                          "(mean-loss scale); the exact optimum that sklearn's lbfgs (tol=1e-4) approximates",
                "reference": "rfs (Tian et al. 2020) eval/meta_eval.py"}
