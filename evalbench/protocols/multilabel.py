"""Multi-label linear probe: one-vs-rest L2 logistic regression per class, one C chosen on validation mAP (PASCAL VOC2007)."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from ..errors import ProtocolInputError
from .average_precision import IGNORED, check_multilabel, mean_ap, multilabel_metrics, per_class
from .contract import FeatureSplits, ProtocolOutcome
from .lbfgs import (
    PRECONDITION_RATIO, FitInfo, GramPreconditioner, fit_softmax_lbfgs, fit_softmax_lbfgs_precond, fixed_order_sum,
)
from .linear import BINARY_CURVATURE, CLIP_GRID, preconditioning_pays, resolve_device, search_log_c
from .metrics import check_n_features
from .probe_protocols import LinearProtocol
from .protocol_base import Protocol, Ticker

OBJECTIVE = ("per class k: C*sum over images not ignored for k of logloss(y_ik, x_i.w_k + b_k) + 0.5*||w_k||^2, bias "
             "unpenalised (scikit-learn's binary LogisticRegression, one per class, as OneVsRestClassifier); "
             "images ignored for a class (VOC difficult-only) are left out of that class's fit")


def ovr_objective(X: torch.Tensor, Y: torch.Tensor, theta: torch.Tensor, lam: float):
    """Sum over classes of the binary mean log-loss + 0.5*lam*||w_k||^2, and its gradient.

    theta = [W; b] (D+1, K); Y (N, K) float with 1 / 0, and -1 for an entry left out of its class's
    loss. Every class's loss is divided by the same N (lam = 1/(C*N)), so each column's minimiser
    is scikit-learn's binary fit at C on that class's non-ignored rows; the columns never interact,
    and the max-abs gradient test holds for every class at once.
    """
    d = X.shape[1]
    W, b = theta[:d], theta[d]
    Z = torch.mm(X, W).add_(b)
    keep = (Y >= 0).to(Z.dtype)
    target = Y.clamp(min=0).to(Z.dtype)
    Z64 = Z.double()
    # log(1 + exp(z)) - y*z in the form that never overflows, summed in float64 (see lbfgs.softmax_objective)
    per = Z64.clamp(min=0).add_(torch.log1p(torch.exp(-Z64.abs()))).sub_(Z64 * target.double())
    n = X.shape[0]
    loss = fixed_order_sum(per * keep.double()) / n + 0.5 * lam * fixed_order_sum(W.double() ** 2)
    R = torch.sigmoid(Z).sub_(target).mul_(keep).div_(n)
    if R.dtype == torch.float32:  # denormals slow the GEMM below (lbfgs.softmax_objective)
        R.masked_fill_(R.abs() < 1e-30, 0.0)
    grad = torch.empty_like(theta)
    grad[:d] = torch.mm(X.T, R).add_(W, alpha=lam)
    grad[d] = R.double().sum(dim=0).to(R.dtype)
    return loss, grad


class MultiLabelLinearProbe(BaseEstimator):
    """One-vs-rest L2 logistic regression (one binary scikit-learn model per class) with one shared C.

    C is searched as `LinearProbe` does (coarse grid in increasing C with warm starts and
    `patience`, then `bisection_steps` bracketing bisections in log10(C); ties -> smaller C), but
    scored by the validation 11-point mAP; the final model is refit on train+val.

    Args:
        C: inverse L2 strength (scikit-learn's); None searches it.
        max_iter, tol, dtype, device, precondition, polish, history_size: as LinearProbe.
        c_grid, bisection_steps, patience: the C search.
        holdout_fraction: share of train rows held out (seeded by random_state) when no validation
            split is given (not stratified: multi-label rows have no single class).
    """

    def __init__(self, C: Optional[float] = None, max_iter: int = 1000, tol: float = 1e-6, dtype: str = "float32",
                 device: str = "auto", c_grid: tuple = CLIP_GRID, bisection_steps: int = 8, patience: int = 2,
                 holdout_fraction: float = 0.1, random_state: int = 0, history_size: int = 30,
                 precondition: bool = True, polish: bool = True):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.dtype = dtype
        self.device = device
        self.c_grid = c_grid
        self.bisection_steps = bisection_steps
        self.patience = patience
        self.holdout_fraction = holdout_fraction
        self.random_state = random_state
        self.history_size = history_size
        self.precondition = precondition
        self.polish = polish

    def fit(self, X, Y, X_val=None, Y_val=None, progress: Optional[Callable[[], None]] = None):
        """Fit every class; choose C on (X_val, Y_val) by 11-point mAP when C is None.

        Y: (N, K) of 1 (present), 0 (absent), -1 (ignored for that class).

        Raises:
            ProtocolInputError: labels that are not multi-label arrays, or no data to hold out.
        """
        X = check_array(X, dtype=(np.float32, np.float64))
        Y = check_multilabel(Y, where="train labels")
        if len(Y) != len(X):
            raise ProtocolInputError(f"{len(X)} feature rows but {len(Y)} label rows")
        if X_val is not None:
            X_val = check_array(X_val, dtype=(np.float32, np.float64))
            Y_val = check_multilabel(Y_val, Y.shape[1], "val labels")
        self.n_features_in_, self.n_classes_ = X.shape[1], Y.shape[1]
        self.device_ = resolve_device(self.device)
        tick = progress or (lambda: None)
        self.search_log_: list[dict[str, Any]] = []
        theta0 = None
        if self.C is None:
            if X_val is None:
                perm = np.random.default_rng(self.random_state).permutation(len(X))
                n_hold = max(1, int(round(self.holdout_fraction * len(X))))
                if n_hold >= len(X):
                    raise ProtocolInputError("too few training images to hold out a validation set for the C search")
                hold, fit = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
                X, Y, X_val, Y_val = X[fit], Y[fit], X[hold], Y[hold]
                self.holdout_ = (len(fit), len(hold))
            self.C_, theta0 = self._search(X, Y, X_val, Y_val, tick)
        else:
            self.C_ = float(self.C)
        X_all = X if X_val is None else np.concatenate([X, X_val.astype(X.dtype, copy=False)])
        Y_all = Y if Y_val is None else np.concatenate([Y, Y_val])
        theta, info, polish = self._final_fit(X_all, Y_all, theta0)
        self.fit_info_, self.polish_info_ = info, polish
        self.converged_ = (polish or info).converged
        tick()
        d = X.shape[1]
        self.coef_ = theta[:d].T.cpu().numpy().astype(np.float64)
        self.intercept_ = theta[d].cpu().numpy().astype(np.float64)
        return self

    # ------------------------------------------------------------------ fitting
    def _tensors(self, X, Y):
        dt = torch.float32 if self.dtype == "float32" else torch.float64
        Xt = torch.as_tensor(np.ascontiguousarray(X), device=self.device_).to(dt)
        Yt = torch.as_tensor(np.asarray(Y, dtype=np.float32), device=self.device_).to(dt)
        return Xt, Yt

    def _fitted_classes(self, Y: np.ndarray) -> np.ndarray:
        """Classes with both a positive and a negative among the fit rows; the others get constant
        scores (their bias would run to +-infinity) and are recorded in `constant_classes_`."""
        ok = ((Y == 1).any(axis=0)) & ((Y == 0).any(axis=0))
        self.constant_classes_ = np.flatnonzero(~ok).tolist()
        return np.flatnonzero(ok)

    def _preconditioner(self, Xt: torch.Tensor, k: int) -> Optional[GramPreconditioner]:
        """linear's preconditioner (the sigmoid's curvature 1/4 caps its scale) when it pays for these data."""
        if not self.precondition or not preconditioning_pays(*Xt.shape, k):
            return None
        return GramPreconditioner(Xt, BINARY_CURVATURE, ratio=PRECONDITION_RATIO)

    def _fit_one(self, Xt, Yt, C: float, theta0, pre) -> tuple[torch.Tensor, FitInfo]:
        lam = 1.0 / (C * Xt.shape[0])
        if pre is not None:
            return fit_softmax_lbfgs_precond(pre, Yt, lam, theta0, self.tol, self.max_iter, self.history_size,
                                             objective=ovr_objective)
        return fit_softmax_lbfgs(Xt, Yt, lam, theta0, self.tol, self.max_iter, self.history_size,
                                 objective=ovr_objective)

    def _scores(self, theta: torch.Tensor, Xv64: torch.Tensor, cols: np.ndarray) -> np.ndarray:
        """(N, n_classes) float64 scores: the fitted columns, 0 for constant classes."""
        d = Xv64.shape[1]
        out = np.zeros((Xv64.shape[0], self.n_classes_))
        with torch.no_grad():
            out[:, cols] = torch.addmm(theta[d].double(), Xv64, theta[:d].double()).cpu().numpy()
        return out

    def _search(self, X, Y, X_val, Y_val, tick) -> tuple[float, torch.Tensor]:
        cols = self._fitted_classes(Y)
        Xt, Yt = self._tensors(X, Y[:, cols])
        Xv64 = torch.as_tensor(np.ascontiguousarray(X_val), device=self.device_).double()
        pre = self._preconditioner(Xt, len(cols))
        sols: dict[float, torch.Tensor] = {}

        def run(logc: float, stage: str) -> float:
            near = min(sols, key=lambda c: (abs(c - logc), c)) if sols else None
            start = sols[near] if near is not None else torch.zeros(Xt.shape[1] + 1, len(cols), dtype=Xt.dtype,
                                                                      device=Xt.device)
            t0 = time.perf_counter()
            theta, info = self._fit_one(Xt, Yt, 10.0 ** logc, start, pre)
            score = mean_ap(self._scores(theta, Xv64, cols), Y_val, "map11")
            sols[logc] = theta
            self.search_log_.append({"C": float(10.0 ** logc), "val_map11": score, "stage": stage,
                                     "n_iter": info.n_iter, "n_evals": info.n_evals, "stop": info.stop_reason,
                                     "converged": info.converged, "start": "zeros" if near is None else "nearest",
                                     "seconds": round(time.perf_counter() - t0, 3)})
            tick()
            return score

        m = search_log_c(self.c_grid, self.patience, self.bisection_steps, run)
        self._search_cols = cols
        return float(10.0 ** m), sols[m]

    def _final_fit(self, X, Y, theta0) -> tuple[torch.Tensor, FitInfo, Optional[FitInfo]]:
        """Fit on train+val at C_ (from the search's solution), polished in float64 when float32
        stops short of tol; returns the full (D+1, n_classes) theta (constant classes: zeros)."""
        cols = self._fitted_classes(Y)
        Xt, Yt = self._tensors(X, Y[:, cols])
        d = Xt.shape[1]
        start = torch.zeros(d + 1, len(cols), dtype=Xt.dtype, device=Xt.device)
        if theta0 is not None:  # the search fitted its own classes; reuse the columns both have
            search_cols = list(getattr(self, "_search_cols", cols))
            for j, c in enumerate(cols):
                if c in search_cols:
                    start[:, j] = theta0[:, search_cols.index(c)]
        theta, info = self._fit_one(Xt, Yt, self.C_, start, self._preconditioner(Xt, len(cols)))
        polish = None
        if self.polish and not info.converged and Xt.dtype == torch.float32:
            theta, polish = fit_softmax_lbfgs(Xt.double(), Yt.double(), 1.0 / (self.C_ * Xt.shape[0]), theta.double(),
                                              self.tol, self.max_iter, self.history_size, objective=ovr_objective)
        full = torch.zeros(d + 1, self.n_classes_, dtype=theta.dtype, device=theta.device)
        full[:, cols] = theta
        return full, info, polish

    # --------------------------------------------------------------- inference
    def decision_function(self, X) -> np.ndarray:
        """Per-class log-odds (N, n_classes), float64; constant classes score 0."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=(np.float32, np.float64))
        check_n_features(self, X)
        return X.astype(np.float64) @ self.coef_.T + self.intercept_


class MultiLabelLinearProtocol(Protocol):
    """One-vs-rest logistic regression on multi-label tasks (PASCAL VOC2007), C chosen on val 11-point mAP."""

    name = "multilabel-linear"
    # 2: fits run as `linear` v7 (all intra-op threads from N*D*K = 2e6 under MKL's strict CNR mode,
    #    fixed-order sums): numbers independent of the core count; fits stop at slightly different points
    version = "2"
    accepts_multilabel = True
    description = ("one-vs-rest L2 logistic regression per class (L-BFGS), one C searched on val 11-point mAP, "
                   "refit on train+val; VOC2007 11-point mAP")
    # linear's settings, less the feature transforms (one-vs-rest fits the raw features); the same names let
    # `linear` hand its parameters over on a multi-label task
    params_spec = tuple(p for p in LinearProtocol.params_spec if p.name not in ("standardize", "l2_normalize"))

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        if not splits.multilabel:
            raise ProtocolInputError("multilabel-linear needs multi-label (N, K) labels; this task has one class per "
                                     "image (use `linear`)")
        p = self.params
        searching = p["C"] is None
        ticker = Ticker(progress, "multi-label probe: C search" if searching else "multi-label probe",
                        (len(p["c_grid"]) + p["bisection_steps"] + 1) if searching else 1)
        probe = MultiLabelLinearProbe(
            C=p["C"], max_iter=p["max_iter"], tol=p["tol"], dtype=p["dtype"], device=p["device"], c_grid=p["c_grid"],
            bisection_steps=p["bisection_steps"], patience=p["patience"], holdout_fraction=p["holdout_fraction"],
            random_state=seed, precondition=p["precondition"], polish=p["polish"])
        t0 = time.perf_counter()
        val = splits.val
        probe.fit(splits.train.X, splits.train.y, None if val is None else val.X, None if val is None else val.y,
                  progress=ticker.advance)
        ticker.done()
        scores = probe.decision_function(splits.test.X)
        metrics = multilabel_metrics(scores, splits.test.y)
        params = dict(p)
        params.update(
            C=probe.C_,
            C_selection=("given" if not searching else "val split (11-point mAP)" if val is not None else
                         f"random {p['holdout_fraction']:.0%} of train images (seed {seed}), 11-point mAP"),
            c_search=("coarse grid in increasing C with warm starts (nearest fitted C), stop after `patience` values "
                      "below the best, then `bisection_steps` bracketing bisections in log10(C); ties -> smaller C; "
                      "scored by validation 11-point mAP") if searching else None,
            fit_on="train+val", objective=OBJECTIVE,
            solver="L-BFGS (history 30, torch's strong-Wolfe line search), full batch, all classes in one run "
                   "(separable: each column is its own binary problem)"
                   + ("; Gram-preconditioned as `linear` (when D <= 2N and the factorisation is cheap; scale "
                      "c = min(1/4, 0.1*lam/median feature variance))" if p["precondition"] else ""),
            difficult=("labels -1 (VOC2007: only 'difficult' objects of the class in the image) are left out of that "
                       "class's fit and its average precision, as the VOC2007 devkit's classification evaluation does"),
            metric="map11: VOC2007 devkit 11-point interpolated AP (recall >= k/10 tested exactly), mean over classes "
                   "with a positive; map: non-interpolated AP (scikit-learn's average_precision_score)",
            device=str(probe.device_),
            reference="Kornblith et al. 2019 linear transfer (VOC2007 11-point mAP), one-vs-rest logistic regression; "
                      "see docs/protocols.md",
            seed=seed,
        )
        ap_by_class = per_class(scores, splits.test.y, "map11")
        details = {
            "val_map11_by_C": [{"C": e["C"], "val_map11": e["val_map11"]} for e in probe.search_log_],
            "search_log": probe.search_log_,
            "final_fit": {"n_iter": probe.fit_info_.n_iter, "stop": probe.fit_info_.stop_reason,
                          "grad_max": probe.fit_info_.grad_max, "converged": probe.converged_,
                          **({"float64_polish": {"n_iter": probe.polish_info_.n_iter,
                                                 "stop": probe.polish_info_.stop_reason}} if probe.polish_info_ else {})},
            "test_ap11_by_class": [None if math.isnan(v) else round(100.0 * v, 4) for v in ap_by_class],
            "constant_classes": probe.constant_classes_,
            "ignored_test_entries": int((splits.test.y == IGNORED).sum()),
            "fit_seconds": round(time.perf_counter() - t0, 3),
        }
        return ProtocolOutcome(metrics=metrics, params=params, details=details, predictions={"scores": scores})

