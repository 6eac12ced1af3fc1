"""LinearProbe: sklearn-compatible L2 logistic regression (multinomial; binary for two classes) with CLIP's C search, in torch."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from ..errors import ProtocolInputError
from .lbfgs import (
    PRECONDITION_RATIO, _few_threads_if_small,
    FitInfo, GramPreconditioner, fit_softmax_lbfgs, fit_softmax_lbfgs_precond, sigmoid_objective,
    softmax_objective,
)
from .metrics import check_class_labels, check_n_features, stratified_holdout

#: Preconditioning is used when D <= PRECONDITION_MAX_D_OVER_N * N (each evaluation then costs at
#: most twice the plain one: the map adds 2*D*D*K multiply-adds to the objective's 2*N*D*K) and
#: the one factorisation (D^3/3, float64) costs at most about PRECONDITION_SETUP_EVALS evaluations.
#: Below linear v6 a work threshold (N*D*K >= 1e7) applied instead; with one factorisation per search
#: the preconditioned path is also faster on small sets (digits pixels, 1078 x 768 x 10: 274 instead
#: of 1400 evaluations over the CLIP path).
PRECONDITION_MAX_D_OVER_N = 2.0
PRECONDITION_SETUP_EVALS = 100

#: Largest preconditioner curvature for two classes: the sigmoid loss's p(1-p) at the zero start
#: (the multinomial one is 1/K).
BINARY_CURVATURE = 0.25


def search_log_c(c_grid, patience: int, bisection_steps: int, run: Callable[[float, str], float]) -> float:
    """CLIP's C search in log10(C); returns the best log10(C) (highest validation score, ties -> smaller C).

    The coarse grid is fitted in increasing C and stops after `patience` values scored below the
    best (0 = never); then `bisection_steps` bisections of the wider side of the bracket around
    the best. run(log10 C, stage) fits one C ("coarse" or "bisection") and returns its score.
    """
    scores: dict[float, float] = {}
    best, below = -1.0, 0
    for c in sorted(float(c) for c in c_grid):
        x = math.log10(c)
        scores[x] = run(x, "coarse")
        if scores[x] > best:
            best, below = scores[x], 0
        elif scores[x] < best:
            below += 1
        if patience and below >= patience:
            break

    def best_log() -> float:
        return min(scores, key=lambda c: (-scores[c], c))

    m = best_log()
    pts = sorted(scores)
    i = pts.index(m)
    lo = pts[i - 1] if i > 0 else None
    hi = pts[i + 1] if i + 1 < len(pts) else None
    for _ in range(bisection_steps):
        left = m - lo if lo is not None else 0.0
        right = hi - m if hi is not None else 0.0
        if max(left, right) <= 1e-9:
            break
        x = (lo + m) / 2 if left >= right else (m + hi) / 2
        scores[x] = run(x, "bisection")
        if scores[x] > scores[m] or (scores[x] == scores[m] and x < m):
            lo, hi = (lo, m) if x < m else (m, hi)
            m = x
        elif x < m:
            lo = x
        else:
            hi = x
    return best_log()


def preconditioning_pays(n: int, d: int, k: int) -> bool:
    """Whether L-BFGS on n x d data with k outputs gains from the Gram preconditioner: D <= 2N, and its one
    factorisation costs at most about PRECONDITION_SETUP_EVALS objective evaluations."""
    return d <= PRECONDITION_MAX_D_OVER_N * n and d * d <= 6 * PRECONDITION_SETUP_EVALS * n * k

#: The logistic-regression objective, recorded by the linear and few-shot linear protocols.
OBJECTIVE = ("C*sum(logloss) + 0.5*||W||^2, bias unpenalised (scikit-learn's); multinomial (softmax) for 3+ "
             "classes, binary (one weight vector, sigmoid loss) for 2 classes, as sklearn's LogisticRegression")


#: CLIP appendix A.3 coarse grid.
CLIP_GRID = (1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4, 1e6)


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class LinearProbe(ClassifierMixin, BaseEstimator):
    """L2 logistic regression minimising sklearn's C*sum(logloss) + 0.5*||W||^2.

    Three or more classes: multinomial (softmax), coef_ (K, D). Two classes: ONE weight
    vector with the sigmoid loss, coef_ (1, D), intercept_ (1,) and decision_function of
    shape (N,), as sklearn's LogisticRegression; two softmax columns would be a different
    model (equal to sklearn's at twice the C).

    Full-batch torch L-BFGS (strong Wolfe) on CPU or CUDA. With C=None, C is chosen on a
    validation split by CLIP's coarse-to-fine search, warm-started along the path, then
    the model is refit on train+val with the chosen C.

    Args:
        C: inverse L2 strength as in sklearn; None searches it.
        max_iter: L-BFGS iterations per fit (sklearn's max_iter).
        tol: max-abs gradient tolerance on the mean-loss objective (sklearn's tol scale).
            1e-6 by default: sklearn's 1e-4 stops far from the optimum at large C and makes
            warm starts return without iterating (docs/protocols.md, "Convergence tolerance").
        dtype: "float32" (default, fast on CPU) or "float64".
        standardize: subtract the mean and divide by the std (from the fit data) first.
        l2_normalize: L2-normalise each row first (before standardize).
        device: "auto", "cpu", "cuda", ...
        c_grid: coarse grid, fitted in increasing order.
        bisection_steps: refinement fits in log10(C) around the best coarse C.
        patience: stop the coarse path after this many consecutive C values scored below
            the best so far (0 = never); large C are the slowest fits and rarely win then.
        holdout_fraction: stratified share of train held out when no validation set is given.
        random_state: seed of that hold-out (numpy default_rng).
        history_size: L-BFGS memory.
        precondition: run L-BFGS in coordinates scaled by the fit data's (centred) Gram
            matrix, W = L^{-T} V with L L^T = c*G + lam*I and c = min(1/K, 0.1*lam/median feature variance)
            (see lbfgs.GramPreconditioner). The objective, its minimiser and the stopping test
            (on the original gradient) are unchanged; far fewer iterations are needed. Used when
            D <= 2N and the factorisation is cheap (use_preconditioner); plain L-BFGS otherwise.
        precondition_curvature: a fixed scale c for every C instead (linear v3-v5: 1/K); None = the rule above.
    """

    #: Bisection fits start from the log10(C)-linear interpolation of the two bracketing
    #: solutions (about 20% fewer L-BFGS evaluations than the nearest one
    #: on a 8000 x 1024 x 100 search; same objective and stopping test).
    interpolate_warm_start = True
    #: Coarse fits beyond every fitted C may also start from the path extrapolated from the
    #: last two solutions (see _warm_starts).
    extrapolate_warm_start = True

    def __init__(
        self,
        C: Optional[float] = None,
        max_iter: int = 1000,
        tol: float = 1e-6,
        dtype: str = "float32",
        standardize: bool = False,
        l2_normalize: bool = False,
        device: str = "auto",
        c_grid: tuple = CLIP_GRID,
        bisection_steps: int = 8,
        patience: int = 2,
        holdout_fraction: float = 0.1,
        random_state: int = 0,
        history_size: int = 30,
        precondition: bool = True,
        precondition_curvature: Optional[float] = None,
        polish: bool = True,
    ):
        self.C = C
        self.polish = polish
        self.max_iter = max_iter
        self.tol = tol
        self.dtype = dtype
        self.standardize = standardize
        self.l2_normalize = l2_normalize
        self.device = device
        self.c_grid = c_grid
        self.bisection_steps = bisection_steps
        self.patience = patience
        self.holdout_fraction = holdout_fraction
        self.random_state = random_state
        self.history_size = history_size
        self.precondition = precondition
        self.precondition_curvature = precondition_curvature

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, X_val=None, y_val=None, progress=None):
        """Fit; search C on (X_val, y_val) when C is None.

        The final model is always fit on X plus X_val (when given): validation data only
        chooses C, then joins the training data, as in CLIP and DINOv2.

        Args:
            X, y: training features (N, D) and labels.
            X_val, y_val: optional validation split; when C is None and it is missing, a
                stratified `holdout_fraction` of X is held out (seeded by random_state).
            progress: optional callable advanced once per fit (used by the protocol).

        Returns:
            self

        Raises:
            ValueError: bad shapes, dtype or settings (sklearn conventions).
        """
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.C is not None and not self.C > 0:
            raise ValueError(f"C must be positive or None, got {self.C!r}")
        X, y = check_X_y(X, y, dtype=(np.float32, np.float64))
        check_class_labels(y)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together")
        if X_val is not None:
            X_val, y_val = check_X_y(X_val, y_val, dtype=(np.float32, np.float64))
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(f"X_val has {X_val.shape[1]} features, X has {X.shape[1]}")
        all_y = y if y_val is None else np.concatenate([y, y_val])
        self.classes_ = np.unique(all_y)
        if len(self.classes_) < 2:
            # sklearn's wording ("1 class"), which its estimator checks look for
            raise ValueError(f"LinearProbe needs at least 2 classes; the data hold 1 class ({self.classes_[0]!r})")
        self.n_features_in_ = X.shape[1]
        self.device_ = resolve_device(self.device)
        tick = progress or (lambda: None)
        yi = np.searchsorted(self.classes_, y)
        yvi = None if y_val is None else np.searchsorted(self.classes_, y_val)

        theta0 = None
        self._search_pre = None
        self.search_setup_seconds_ = 0.0
        self.search_log_: list[dict[str, Any]] = []
        if self.C is None:
            if X_val is None:
                fit_idx, hold_idx = stratified_holdout(yi, self.holdout_fraction, self.random_state)
                if len(hold_idx) == 0:
                    raise ProtocolInputError("too few training examples to hold out a validation set for the C search")
                Xs, ys, Xv, yv = X[fit_idx], yi[fit_idx], X[hold_idx], yi[hold_idx]
            else:
                Xs, ys, Xv, yv = X, yi, X_val, yvi
            self.C_, theta0 = self._search(Xs, ys, Xv, yv, tick)
            self.val_scores_ = {e["C"]: e["val_top1"] for e in self.search_log_}
        else:
            self.C_ = float(self.C)
            self.val_scores_ = {}
        X_all = X if X_val is None else np.concatenate([X, X_val.astype(X.dtype, copy=False)])
        y_all = yi if yvi is None else np.concatenate([yi, yvi])
        Xt, yt = self._prepare(X_all, y_all, fit_stats=True)
        if theta0 is None:
            theta0 = self._zero_theta(Xt)
        # The refit reuses the search's Gram and mean when there was a search: any SPD matrix
        # is a valid preconditioner and train's Gram is close to train+val's (saves N*D^2).
        pre = self._preconditioner(Xt, self._search_pre)
        theta, info = self._fit_one(Xt, yt, self.C_, theta0, pre)
        self._search_pre = None
        self.fit_info_, self.polish_info_ = info, None
        if self.polish and not info.converged and Xt.dtype == torch.float32:
            theta, self.polish_info_ = self._polish(Xt, yt, theta, pre)
        self.converged_ = (self.polish_info_ or info).converged
        tick()
        d = Xt.shape[1]
        self.coef_ = theta[:d].T.cpu().numpy().astype(np.float64)
        self.intercept_ = theta[d].cpu().numpy().astype(np.float64)
        self.n_iter_ = info.n_iter + (self.polish_info_.n_iter if self.polish_info_ else 0)
        return self

    def _polish(self, Xt, yt, theta, pre=None) -> tuple[torch.Tensor, FitInfo]:
        """Continue a float32 fit that stopped at float32's resolution short of `tol` in float64,
        from its solution, so the final model reaches the tolerance the protocol records
        (the search's fits stay float32: they only rank C values)."""
        X64, theta64 = Xt.double(), theta.double()
        lam = 1.0 / (self.C_ * Xt.shape[0])
        objective = sigmoid_objective if self._binary else softmax_objective
        if pre is not None:  # the same (exact) change of variables, in float64
            return fit_softmax_lbfgs_precond(pre.rebased(X64), yt, lam, theta64, self.tol, self.max_iter,
                                             self.history_size, objective=objective)
        return fit_softmax_lbfgs(X64, yt, lam, theta64, self.tol, self.max_iter, self.history_size, objective=objective)

    def _preconditioner(self, Xt, like: Optional[GramPreconditioner] = None) -> Optional[GramPreconditioner]:
        """A GramPreconditioner for these fit data (G, mu and factorisations from `like` when
        given), or None (switched off, or D too large for N: see PRECONDITION_MAX_D_OVER_N)."""
        if not self.use_preconditioner(*Xt.shape, self._n_outputs):
            return None
        if like is not None:
            return like.rebased(Xt)
        if self.precondition_curvature is not None:  # a fixed scale c for every C (linear v3-v5 used 1/K)
            return GramPreconditioner(Xt, self.precondition_curvature, ratio=None)
        return GramPreconditioner(Xt, BINARY_CURVATURE if self._binary else 1.0 / len(self.classes_),
                                  ratio=PRECONDITION_RATIO)

    def use_preconditioner(self, n: int, d: int, k: int) -> bool:
        """Whether fits on n x d data with k outputs run preconditioned (see PRECONDITION_MAX_D_OVER_N)."""
        return bool(self.precondition) and preconditioning_pays(n, d, k)

    @property
    def _binary(self) -> bool:
        """Two classes: sklearn's binary model (one weight vector, sigmoid loss)."""
        return len(self.classes_) == 2

    @property
    def _n_outputs(self) -> int:
        """Columns of theta: 1 for two classes, else one per class."""
        return 1 if self._binary else len(self.classes_)

    def _fit_one(self, Xt, yt, C, theta0, pre=None) -> tuple[torch.Tensor, FitInfo]:
        lam = 1.0 / (C * Xt.shape[0])
        objective = sigmoid_objective if self._binary else softmax_objective
        if pre is not None:
            return fit_softmax_lbfgs_precond(pre, yt, lam, theta0, self.tol, self.max_iter, self.history_size,
                                             objective=objective)
        return fit_softmax_lbfgs(Xt, yt, lam, theta0, self.tol, self.max_iter, self.history_size,
                                 objective=objective)

    def _predicted_index(self, logits: torch.Tensor) -> torch.Tensor:
        """Class index from the model's outputs: (N, K) argmax, or (N, 1) > 0 for two classes
        (sklearn's rule: a zero decision value goes to classes_[0])."""
        if self._binary:
            return (logits[:, 0] > 0).long()
        return logits.argmax(dim=1)

    def _search(self, Xs, ys, Xv, yv, tick) -> tuple[float, torch.Tensor]:
        """Coarse grid (increasing C, warm starts) then bracketing bisection in log10(C)."""
        Xt, yt = self._prepare(Xs, ys, fit_stats=True)
        Xvt, yvt = self._prepare(Xv, yv, fit_stats=False)
        t0 = time.perf_counter()
        pre = self._search_pre = self._preconditioner(Xt)
        self.search_setup_seconds_ = round(time.perf_counter() - t0, 3)  # Gram of the fit data
        # Validation logits in float64: the argmax is a discrete decision, and float32 GEMM
        # rounding (which differs between BLAS kernels) must not break its near-ties.
        Xv64 = Xvt.double()
        sols: dict[float, torch.Tensor] = {}  # log10(C) -> theta

        def run(logc: float, stage: str) -> float:
            starts, names = self._warm_starts(sols, logc, Xt)
            t0 = time.perf_counter()
            theta, info = self._fit_one(Xt, yt, 10.0 ** logc, starts, pre)
            # One thread, as in the fits: on small problems OpenMP wake-ups cost more (ms) than the GEMM.
            with torch.no_grad(), _few_threads_if_small(Xv64, len(self.classes_)):
                d = Xt.shape[1]
                pred = self._predicted_index(torch.addmm(theta[d].double(), Xv64, theta[:d].double()))
                acc = float(100.0 * (pred == yvt).double().mean())
            sols[logc] = theta
            self.search_log_.append({
                "C": float(10.0 ** logc), "val_top1": acc, "stage": stage,
                "n_iter": info.n_iter, "n_evals": info.n_evals, "stop": info.stop_reason,
                "converged": info.converged, "start": names[info.start],
                "seconds": round(time.perf_counter() - t0, 3),
            })
            tick()
            return acc

        m = search_log_c(self.c_grid, self.patience, self.bisection_steps, run)
        return float(10.0 ** m), sols[m]

    def _zero_theta(self, Xt: torch.Tensor) -> torch.Tensor:
        """[W; b] = 0 for these fit data, shape (D+1, K), or (D+1, 1) for two classes."""
        return torch.zeros(Xt.shape[1] + 1, self._n_outputs, dtype=Xt.dtype, device=Xt.device)

    def _warm_starts(self, sols: dict, logc: float, Xt: torch.Tensor):
        """Candidate starting points for the fit at log10(C) = logc, and their names.

        Between two fitted C: their solutions interpolated linearly in log10(C). Beyond the
        largest fitted C (the coarse path): the nearest solution, and when two are fitted,
        also the path extrapolated linearly in log10(C) from the last two; the fit starts from
        whichever has the lower objective (on 20k x 2048 x 100 features the extrapolated point
        halved the evaluations of the C=1 fit after C=0.01; a bad extrapolation costs one
        evaluation). First fit: zeros.
        """
        below = sorted(c for c in sols if c < logc)
        above = sorted(c for c in sols if c > logc)
        if self.interpolate_warm_start and below and above:
            lo_c, hi_c = below[-1], above[0]
            return [torch.lerp(sols[lo_c], sols[hi_c], (logc - lo_c) / (hi_c - lo_c))], ["interpolated"]
        if sols:  # the nearest C already fitted (smaller C on ties)
            near = min(sols, key=lambda c: (abs(c - logc), c))
            starts, names = [sols[near]], ["nearest"]
            if self.extrapolate_warm_start and len(below) >= 2 and not above:
                a, b = below[-2], below[-1]
                starts.append(torch.lerp(sols[a], sols[b], (logc - a) / (b - a)))  # weight > 1: extrapolation
                names.append("extrapolated")
            return starts, names
        return [self._zero_theta(Xt)], ["zeros"]

    def _prepare(self, X: np.ndarray, y: Optional[np.ndarray], fit_stats: bool):
        """Row L2 normalisation and standardisation, then a tensor on the fit device."""
        dt = torch.float32 if self.dtype == "float32" else torch.float64
        Xt = torch.as_tensor(np.ascontiguousarray(X), device=self.device_).to(dt)
        if self.l2_normalize:
            Xt = torch.nn.functional.normalize(Xt, dim=1)
        if self.standardize:
            if fit_stats:
                self.mean_ = Xt.mean(dim=0)
                # Constant features would divide by zero; leave them unscaled.
                std = Xt.std(dim=0, unbiased=False)
                self.scale_ = torch.where(std > 0, std, torch.ones_like(std))
            Xt = (Xt - self.mean_.to(Xt)) / self.scale_.to(Xt)
        yt = None if y is None else torch.as_tensor(np.asarray(y, dtype=np.int64), device=self.device_)
        return Xt, yt

    # --------------------------------------------------------------- inference
    def decision_function(self, X) -> np.ndarray:
        """Logits as float64: (N, n_classes), or (N,) for two classes (the log-odds of
        classes_[1], as sklearn's; its roc_auc scorer needs that shape)."""
        z = self._logits(X)
        return z[:, 0] if self._binary else z

    def class_scores(self, X) -> np.ndarray:
        """One score column per class, (N, n_classes), whose argmax is predict's label and
        whose softmax is predict_proba: the logits, or [0, log-odds] for two classes. The
        protocols rank classes with it (evalbench.protocols.metrics.classification_metrics)."""
        z = self._logits(X)
        return np.hstack([np.zeros_like(z), z]) if self._binary else z

    def _logits(self, X) -> np.ndarray:
        """X @ coef_.T + intercept_ after the fit's preprocessing, (N, n_outputs) float64."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=(np.float32, np.float64))
        check_n_features(self, X)
        Xt, _ = self._prepare(X, None, fit_stats=False)
        Xn = Xt.cpu().numpy().astype(np.float64)
        return Xn @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities: softmax of class_scores (the sigmoid for two classes)."""
        z = self.class_scores(X)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Predicted labels (from classes_); equal scores go to the first class (for two
        classes: a zero decision value gives classes_[0], as sklearn)."""
        scores = self.class_scores(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(scores, axis=1)]
