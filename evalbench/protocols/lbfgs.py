"""Full-batch torch L-BFGS for scikit-learn's L2 logistic-regression objectives (multinomial and binary)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch.optim.lbfgs import _strong_wolfe  # torch's own (private, stable since 1.4)

from ..blas import thread_count_independent_gemm
from ..threads import intra_op_threads

#: CPU fits with fewer multiply-adds per objective evaluation (N*D*K) run on one intra-op thread:
#: OpenMP wake-ups cost more than a second thread saves (measured on 2 Xeon cores, strict CNR:
#: 1.08x faster at 1e6, 1.4x at 4e6, 1.6-1.9x from 8e6).
MULTI_THREAD_MIN_WORK = 2e6

#: Without MKL's strict CNR mode (evalbench/blas.py), multi-threaded GEMMs round differently with each
#: thread count, so fits below this size stay on one thread and their numbers do not depend on the cores.
SINGLE_THREAD_MAX_WORK = 1e8


def fit_threads(X: torch.Tensor, k: int) -> int:
    """Intra-op threads for the objective of a fit on X with k outputs: the caller's count, or 1 for
    a small CPU fit (see MULTI_THREAD_MIN_WORK and SINGLE_THREAD_MAX_WORK)."""
    limit = MULTI_THREAD_MIN_WORK if thread_count_independent_gemm() else SINGLE_THREAD_MAX_WORK
    small = X.device.type == "cpu" and X.shape[0] * X.shape[1] * k < limit
    return 1 if small else torch.get_num_threads()


def _few_threads_if_small(X: torch.Tensor, k: int):
    """Run a block on fit_threads(X, k) intra-op threads, restoring the caller's setting afterwards."""
    return intra_op_threads(fit_threads(X, k))


def _on_threads(evaluate, threads: int):
    """`evaluate` run on `threads` intra-op threads. The L-BFGS loop around it runs on one: torch's
    vector dot (MKL's sdot) splits vectors of 16k+ elements across threads and rounds differently
    with each count, and the loop's vectors are too short to gain from threads."""
    def on_threads(v):
        with intra_op_threads(threads):
            return evaluate(v)
    return on_threads


#: Full sums of more elements than this run in fixed chunks, each below torch's parallel grain
#: (32768), added in order: torch's multi-threaded full reduction rounds differently per thread count.
SUM_CHUNK = 16384


def fixed_order_sum(x: torch.Tensor) -> torch.Tensor:
    """x.sum() whose rounding does not depend on the thread count (see SUM_CHUNK)."""
    flat = x.reshape(-1)
    if flat.numel() <= SUM_CHUNK:
        return flat.sum()
    return torch.stack([chunk.sum() for chunk in flat.split(SUM_CHUNK)]).sum()


@dataclass
class FitInfo:
    """How one L-BFGS fit ended."""

    n_iter: int
    n_evals: int
    loss: float
    grad_max: float
    converged: bool
    stop_reason: str = ""  # gtol | no_progress | stalled | max_iter
    start: int = 0  # which of the candidate starting points was used (the lowest loss)


#: One starting point (D+1, K), or several candidates: the fit starts from the one with the
#: lowest objective (each costs one evaluation; the chosen one's is reused).
Starts = Union[torch.Tensor, Sequence[torch.Tensor]]


def _as_list(theta0: Starts) -> list[torch.Tensor]:
    return [theta0] if isinstance(theta0, torch.Tensor) else list(theta0)


def softmax_objective(X: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, lam: float):
    """Mean log-loss + 0.5*lam*||W||^2 and its gradient; theta = [W; b] of shape (D+1, K).

    This is scikit-learn's lbfgs objective divided by C*N (lam = 1/(C*N)), so it has the
    same minimiser, and a gradient test on it means the same as sklearn's ``tol``.
    The bias row is not penalised, as in sklearn.
    """
    n = X.shape[0]
    d = X.shape[1]
    W, b = theta[:d], theta[d]
    # Logits are built class-major, Z^T = W^T X^T (K, N): with MKL on this CPU the two
    # GEMMs in this layout (W^T X^T, then P^T X) run ~17% faster than X W and X^T P.
    ZT = torch.mm(W.T, X.T).add_(b[:, None])
    cols = torch.arange(X.shape[0], device=X.device)
    true_logits = fixed_order_sum(ZT[y, cols].double())
    # logsumexp and softmax in place in the logits' buffer (no (K, N) temporaries):
    # P = exp(Z - max) / sum, already scaled by 1/n for the mean-loss gradient.
    zmax = ZT.amax(dim=0)
    PT = ZT.sub_(zmax).exp_()
    norm = PT.sum(dim=0)
    lse = zmax.double() + norm.double().log()
    # Sum the loss in float64: L-BFGS's line search and stall test compare losses of
    # nearby iterates, and a float32 sum would hide real decreases below ~1e-7.
    loss = (fixed_order_sum(lse) - true_logits) / n + 0.5 * lam * fixed_order_sum(W.double() ** 2)
    PT.mul_(norm.mul_(n).reciprocal_())
    if PT.dtype == torch.float32:
        # Well-fitted rows give probabilities that underflow into float32 denormals, and
        # the GEMM below runs 10-20x slower on them (measured: 45 vs 2.6 ms per
        # evaluation at C=100). Terms this small cannot change the float32 gradient.
        torch.nn.functional.threshold_(PT, 1e-30, 0.0)
    PT[y, cols] -= 1.0 / n  # the residual (softmax(Z) - onehot(y)) / n
    grad = torch.empty_like(theta)
    grad[:d] = torch.mm(PT, X).T
    grad[:d].add_(W, alpha=lam)
    # The bias gradient is a sum of N terms that nearly cancel; float64 keeps it exact
    # enough to place the (unpenalised, weakly curved) bias where float64 fits put it.
    grad[d] = PT.double().sum(dim=1).to(PT.dtype)
    return loss, grad


def sigmoid_objective(X: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, lam: float):
    """Binary mean log-loss + 0.5*lam*||w||^2 and its gradient; theta = [w; b] of shape (D+1, 1).

    scikit-learn fits two classes with ONE weight vector and the sigmoid (binomial) loss,
    C*sum(log(1 + exp(-s_i z_i))) + 0.5*||w||^2 with s_i = +-1 (sklearn/linear_model/
    _logistic.py, `_logistic_regression_path`: a binary target gets a single coefficient
    column and HalfBinomialLoss). Two softmax columns are NOT that model: the penalty on
    both columns equals sklearn's at twice the C. Divided by C*N (lam = 1/(C*N)) as in
    softmax_objective, so ``tol`` means the same. y holds 0 / 1 (1 = classes_[1]); the bias
    is not penalised.
    """
    n = X.shape[0]
    d = X.shape[1]
    w, b = theta[:d], theta[d]
    z = torch.mm(X, w).squeeze(1).add_(b)
    yf = y.to(z.dtype)
    # log(1 + exp(z)) - y*z per sample, in float64 for the same reason as softmax_objective's
    # sum; the max(z, 0) + log1p(exp(-|z|)) form never overflows.
    z64 = z.double()
    per_sample = z64.clamp(min=0).add_(torch.log1p(torch.exp(-z64.abs()))).sub_(z64 * yf.double())
    loss = fixed_order_sum(per_sample) / n + 0.5 * lam * fixed_order_sum(w.double() ** 2)
    r = torch.sigmoid(z).sub_(yf).div_(n)  # residual (sigmoid(z) - y) / n
    if r.dtype == torch.float32:  # denormal residuals slow the product below (see softmax_objective)
        r.masked_fill_(r.abs() < 1e-30, 0.0)
    grad = torch.empty_like(theta)
    grad[:d] = torch.mm(X.T, r[:, None]).add_(w, alpha=lam)
    grad[d] = fixed_order_sum(r.double()).to(r.dtype)
    return loss, grad


#: An objective: (X, y, theta, lam) -> (loss as a float64 scalar, gradient shaped like theta).
Objective = Callable[..., tuple]

#: Per-dtype relative loss decrease below which an iteration counts as stalled. float32
#: per-sample terms leave relative noise of ~1e-9..1e-8 in the (float64-summed) mean loss, so
#: smaller decreases are rounding, not progress; float64 uses scipy's ftol (64 * eps).
REL_FTOL = {torch.float32: 1e-7, torch.float64: 64 * 2.2e-16}

#: Consecutive stalled iterations that end a fit. One is not enough: L-BFGS sometimes takes
#: a short step and then a long one once its curvature pairs catch up.
STALL_ITERS = 3

#: Line-search evaluations per iteration. A good quasi-Newton direction needs 1-2; more
#: only happen when loss differences drown in rounding, and then they never succeed
#: (torch's default 25 cost 0.6-0.8 s per iteration at 20k x 2048 features).
MAX_LS = 10


#: Shorter retries (1e-4 x) of a steepest-descent step whose line search found no lower point.
FIRST_STEP_RETRIES = 3


def fit_softmax_lbfgs(
    X: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    theta0: Starts,
    tol: float,
    max_iter: int,
    history_size: int = 30,
    objective: Objective = softmax_objective,
) -> tuple[torch.Tensor, FitInfo]:
    """Minimise `objective` (softmax_objective by default) from theta0 with L-BFGS (strong Wolfe line search).

    Stops when max|grad| <= tol (scipy/sklearn's ``gtol`` test on the same scaled
    objective); when the line search finds no lower loss (the dtype's resolution is
    reached); after STALL_ITERS iterations in a row whose relative loss decrease is below
    REL_FTOL; or after max_iter iterations. A warm start that already passes the
    gradient test returns at once; the caller keeps tol tight (1e-6).

    Args:
        X: (N, D) features on the target device and dtype.
        y: (N,) int64 class indices in [0, K).
        lam: L2 strength in mean-loss form, 1 / (C * N).
        theta0: (D+1, K) starting point (not modified), or a list of candidates (see Starts).
        tol: gradient tolerance (max-abs).
        max_iter: L-BFGS iteration cap.
        history_size: L-BFGS memory.
        objective: softmax_objective (theta (D+1, K)) or sigmoid_objective (theta (D+1, 1)).

    Returns:
        (theta, FitInfo) where FitInfo counts iterations and objective evaluations.
    """
    starts = _as_list(theta0)
    shape = starts[0].shape

    def evaluate(flat: torch.Tensor):
        loss, grad = objective(X, y, flat.view(shape), lam)
        grad = grad.view(-1)
        return float(loss), grad, float(grad.abs().max())

    threads = fit_threads(X, shape[1])
    with torch.no_grad(), intra_op_threads(1):
        x, info = _lbfgs(_on_threads(evaluate, threads), [t.detach().reshape(-1).clone() for t in starts], tol, max_iter, history_size,
                         REL_FTOL.get(X.dtype, 1e-8), unit_first_step=False)
    return x.view(shape), info


#: Preconditioner strength relative to the penalty: c = min(c_max, PRECONDITION_RATIO * lam / g_ref), g_ref
#: the median variance of the non-constant features, so L L^T = lam * (PRECONDITION_RATIO * G / g_ref + I)
#: for all but the smallest C. Full whitening
#: (c = 1/K, linear v3-v5) fits small C well but leaves large-C fits ill-conditioned: there most samples are
#: fitted confidently and contribute almost no curvature, so c*G overstates the Hessian in most directions
#: and L-BFGS crawls through many small eigenvalues. A mild preconditioner leaves a few large ones, which
#: L-BFGS's memory absorbs. Measured over the CLIP path (evaluations per fit, warm starts, six real and
#: synthetic sets, ratios 0.003-1 and 1/K): 0.1 is within 15% of the best ratio on every set, and needs
#: 1.2-3.5x fewer evaluations than c = 1/K (1655 -> 722 on effnet-lite0 fashion-mnist-mini).
PRECONDITION_RATIO = 0.1


class GramPreconditioner:
    """Exact change of variables that makes the logistic objective's Hessian better scaled.

    Built once per fit-data matrix X (N, D): the column mean mu, the centred features
    Xc = X - mu and their Gram G = Xc^T Xc / N (float64). For a given lam, with
    P = c*G + lam*I and c = curvature(lam), the fit runs on

        W = M V,    b = c^{-1/2} u - mu^T W,    M ~ L^{-T}, L L^T = P,

    so logits X W + b = Xc W + c^{-1/2} u. Any nonsingular M is an exact reparametrisation:
    the objective (mean log-loss + 0.5*lam*||W||^2, bias unpenalised) is unchanged as a
    function of (W, b), so is its minimiser; only the coordinates L-BFGS sees are better
    scaled. M is stored in the fit dtype and applied by matrix products (W = M V, and the
    gradient M^T g_W), which are exact adjoints of each other. The stopping test is on the
    gradient in the ORIGINAL (W, b) coordinates: dW = Xc^T P + lam*W + mu (1^T P), db = 1^T P.

    Args:
        X: fit data (N, D) in the fit dtype and device.
        c_max: the largest curvature scale (softmax: 1/K; sigmoid: 1/4).
        G, mu: a Gram matrix and mean to reuse (any SPD G and any mu are valid).
        ratio: PRECONDITION_RATIO; None fixes c = c_max for every lam (linear v3-v5).
    """

    def __init__(self, X: torch.Tensor, c_max: float, G: Optional[torch.Tensor] = None,
                 mu: Optional[torch.Tensor] = None, ratio: Optional[float] = PRECONDITION_RATIO):
        n, d = X.shape
        self.mu = X.mean(dim=0) if mu is None else mu.to(X)
        # Stored column-major (an (N, D) view of a contiguous (D, N) buffer): the logits W^T Xc^T then read
        # Xc^T contiguously, 1.15-1.3x faster than from a row-major Xc (3600 x 784 and 5000 x 1280, K = 10),
        # and the gradient's P^T Xc runs at the same speed either way.
        Xc_t = torch.empty((d, n), dtype=X.dtype, device=X.device)
        self.Xc = torch.sub(X.T, self.mu[:, None], out=Xc_t).T
        if G is None:
            G = torch.mm(self.Xc.T, self.Xc).double().div_(n)
        self.G = G
        self.c_max = float(c_max)
        self.ratio = ratio
        # The typical feature variance: the median over non-constant features (a mean would follow the few
        # largest columns when scales span decades, and leave the rest unpreconditioned).
        diag = torch.diagonal(G)
        varying = diag[diag > 1e-12 * float(diag.max())]
        self.g_ref = max(float(varying.median()) if len(varying) else 0.0, 1e-30)
        self._maps: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}  # in the fit dtype
        self._factors: dict[float, torch.Tensor] = {}  # float64 L0^{-T}, shared with rebased copies of any dtype

    def rebased(self, X: torch.Tensor) -> "GramPreconditioner":
        """The same G, mu and factorisations for other fit data (a refit on train+val: train's
        Gram is close to train+val's, and any SPD matrix is a valid preconditioner)."""
        other = GramPreconditioner(X, self.c_max, G=self.G, mu=self.mu, ratio=self.ratio)
        other._factors = self._factors  # the float64 polish reuses the float32 fits' factorisations
        if X.dtype == self.Xc.dtype:
            other._maps = self._maps
        return other

    def curvature(self, lam: float) -> float:
        """The scale c of the Gram term for this lam."""
        if self.ratio is None:
            return self.c_max
        return min(self.c_max, self.ratio * lam / self.g_ref)

    def maps(self, lam: float) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        """(M0, M0^T, scale, c) with M = scale * M0 ~ L^{-T}: M0 = L0^{-T} for L0 L0^T = (c/lam)*G + I.

        P/lam depends on lam only through c/lam, which is the constant ratio/g_ref whenever
        c < c_max: one factorisation then serves every C of a search and its refit.
        """
        c = self.curvature(lam)
        shape = c / lam
        key = round(shape, 12) if self.ratio is not None else lam
        if key not in self._maps:
            if key not in self._factors:
                A = self.G * shape
                A.diagonal().add_(1.0)  # P/lam = shape*G + I: condition <= 1 + shape*max(eig G), no floor needed
                with intra_op_threads(1):  # MKL's multi-threaded Cholesky rounds differently per thread count
                    L0 = torch.linalg.cholesky(A)
                    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
                    _keep_few(self._factors)
                    self._factors[key] = torch.linalg.solve_triangular(L0.T, eye, upper=True)  # L0^{-T}, upper
            M0 = self._factors[key].to(self.Xc.dtype)
            _keep_few(self._maps)
            # both orientations row-major: the maps' GEMMs read them contiguously
            self._maps[key] = (M0.contiguous(), M0.T.contiguous())
        M0, M0T = self._maps[key]
        return M0, M0T, lam ** -0.5, c


def _keep_few(cache: dict) -> None:
    """Make room for one more factorisation: a fixed-c search visits one shape per C; keep a few."""
    if len(cache) >= 4:
        cache.pop(next(iter(cache)))


def fit_softmax_lbfgs_precond(
    pre: GramPreconditioner,
    y: torch.Tensor,
    lam: float,
    theta0: Starts,
    tol: float,
    max_iter: int,
    history_size: int = 30,
    objective: Objective = softmax_objective,
) -> tuple[torch.Tensor, FitInfo]:
    """fit_softmax_lbfgs in preconditioned coordinates (see GramPreconditioner); same
    objective, same minimiser, same stopping rule on the original gradient.

    theta0 (or each candidate) and the returned theta are in the original [W; b] form, shape (D+1, K).
    """
    Xc, mu = pre.Xc, pre.mu
    starts = _as_list(theta0)
    d, k = starts[0].shape[0] - 1, starts[0].shape[1]
    dt = Xc.dtype
    M0, M0T, scale, c = pre.maps(lam)
    sc = c ** 0.5  # b' = u / sc
    mu64 = mu.double()

    # Both maps run class-major, W^T = V^T M^T and (M^T g)^T = g^T M: with K << D these GEMMs are
    # about twice as fast as M V and M^T g (measured at D = 784 and 1280, K = 10). theta is therefore
    # built as a (K, D+1) buffer and handed on as its transposed (D+1, K) view.
    def to_orig(v: torch.Tensor) -> torch.Tensor:
        V = v.view(d + 1, k)
        theta_t = torch.empty(k, d + 1, dtype=dt, device=Xc.device)
        Wt = torch.mm(V[:d].T, M0T).mul_(scale)
        if dt == torch.float32:  # denormal weights would slow the GEMMs (see softmax_objective)
            Wt.masked_fill_(Wt.abs() < 1e-30, 0.0)
        theta_t[:, :d] = Wt
        theta_t[:, d] = V[d] / sc  # centred bias b'
        return theta_t.T

    def evaluate(v: torch.Tensor):
        theta = to_orig(v)
        loss, g = objective(Xc, y, theta, lam)  # gradient wrt (W, b'), laid out like theta
        gb = g[d].double()
        gW_orig = g[:d].double() + mu64[:, None] * gb[None, :]  # not in place: .double() may be g itself
        gmax = max(float(gW_orig.abs().max()), float(gb.abs().max()))
        gv = torch.empty(d + 1, k, dtype=dt, device=Xc.device)
        gv[:d] = torch.mm(g[:d].T, M0).mul_(scale).T
        gv[d] = g[d] / sc
        return float(loss), gv.view(-1), gmax

    threads = fit_threads(Xc, k)
    with torch.no_grad(), intra_op_threads(1):
        # The start in preconditioned coordinates: V = M^{-1} W by a solve with M0 (triangular), so
        # that the point evaluated is W itself up to rounding.
        def to_precond(theta: torch.Tensor) -> torch.Tensor:
            W0 = theta[:d].double()
            v0 = torch.empty(d + 1, k, dtype=dt, device=Xc.device)
            v0[:d] = (torch.linalg.solve_triangular(M0.double(), W0, upper=True) / scale).to(dt)
            v0[d] = ((theta[d].double() + mu64 @ W0) * sc).to(dt)
            return v0.view(-1)

        v, info = _lbfgs(_on_threads(evaluate, threads), [to_precond(t) for t in starts], tol, max_iter, history_size,
                         REL_FTOL.get(dt, 1e-8), unit_first_step=True)
        theta = to_orig(v).contiguous()
        W64 = theta[:d].double()
        theta[d] = (theta[d].double() - mu64 @ W64).to(dt)
    return theta, info


class _Evaluations:
    """Counts objective evaluations and remembers max|original gradient| of each point
    evaluated in the current line search (torch's line search may return a clone of a
    gradient, so it is looked up by value)."""

    def __init__(self, evaluate):
        self.evaluate = evaluate
        self.n = 0
        self.seen: list[tuple[torch.Tensor, float]] = []

    def __call__(self, xx):
        self.n += 1
        f_, g_, gm = self.evaluate(xx)
        self.seen.append((g_, gm))
        return f_, g_

    def directional(self, xx, t, d):  # the signature torch's line search expects
        return self(xx + t * d)

    def gmax_of(self, g_) -> float:
        """max|original gradient| of an evaluated gradient; forgets the line search's points."""
        for cand, gm in reversed(self.seen):
            if cand is g_ or torch.equal(cand, g_):
                self.seen.clear()
                return gm
        raise RuntimeError("line search returned a gradient that was never evaluated")


class _Curvature:
    """The L-BFGS memory: the last `size` pairs (s, y, 1/y.s) and the initial Hessian scale."""

    def __init__(self, size: int):
        self.size = size
        self.s: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []
        self.rho: list[float] = []
        self.h_diag = 1.0

    def descent_direction(self, g: torch.Tensor) -> tuple[torch.Tensor, float]:
        """-H g and its slope g.d; steepest descent (and a cleared memory) when stale
        curvature makes -H g point uphill."""
        d = _direction(g, self.s, self.y, self.rho, self.h_diag)
        gtd = float(g.dot(d))
        if gtd > -1e-30:
            self.s.clear(), self.y.clear(), self.rho.clear()
            d, gtd = -g, -float(g.dot(g))
        return d, gtd

    def add(self, s: torch.Tensor, yk: torch.Tensor) -> None:
        ys = float(yk.dot(s))
        yy = float(yk.dot(yk))
        # Keep a pair only with clearly positive curvature (scipy's test is relative too:
        # the mean-loss scale makes ys tiny near the optimum, and an absolute 1e-10
        # dropped every pair and froze the steps).
        if ys > 1e-10 * yy and yy > 0:
            if len(self.s) == self.size:
                self.s.pop(0), self.y.pop(0), self.rho.pop(0)
            self.s.append(s), self.y.append(yk), self.rho.append(1.0 / ys)
            self.h_diag = ys / yy


def _lbfgs(evaluate, starts: list[torch.Tensor], tol: float, max_iter: int, history_size: int, rel_ftol: float,
           unit_first_step: bool) -> tuple[torch.Tensor, FitInfo]:
    """The L-BFGS loop from the lowest-loss of `starts` (flat tensors, modified in place).

    evaluate(x) -> (loss, grad wrt x, max|grad| in the original coordinates).
    """
    ev = _Evaluations(evaluate)
    f = None
    for i, x0 in enumerate(starts):
        f0, g0 = ev(x0)
        gm0 = ev.gmax_of(g0)
        if f is None or f0 < f:
            x, f, g, gmax, start = x0, f0, g0, gm0, i
    memory = _Curvature(history_size)
    n_iter, stalled, reason = 0, 0, "max_iter"
    while True:
        if gmax <= tol:
            reason = "gtol"
            break
        if n_iter >= max_iter:
            break
        d, gtd = memory.descent_direction(g)
        # The very first step is scaled to about unit length (as torch does); later
        # steps start at 1 on d = -H g, which carries the curvature scale. Preconditioned
        # coordinates are scaled by the penalty and the Gram matrix, so their first step is 1 too.
        t0 = 1.0 if (n_iter > 0 or unit_first_step) else min(1.0, 1.0 / float(g.abs().sum()))
        gtd_t = torch.tensor(gtd, dtype=torch.float64)
        f_new, g_new, t, _ = _strong_wolfe(ev.directional, x, t0, d, f, g, gtd_t, max_ls=MAX_LS)
        # A steepest-descent step (no curvature pairs yet) can overshoot by orders of magnitude
        # where the data's curvature far exceeds the preconditioner's (features whose scales span
        # decades, large C): retry it shorter before concluding that no lower point exists.
        for _ in range(FIRST_STEP_RETRIES):
            if f_new < f or memory.s:
                break
            ev.seen.clear()
            t0 *= 1e-4
            f_new, g_new, t, _ = _strong_wolfe(ev.directional, x, t0, d, f, g, gtd_t, max_ls=MAX_LS)
        n_iter += 1
        t = float(t)
        if not f_new < f:  # no lower point found: rounding dominates the loss differences
            reason = "no_progress"
            break
        gmax_new = ev.gmax_of(g_new)
        s = d.mul(t)
        memory.add(s, g_new - g)
        stalled = stalled + 1 if (f - f_new) <= rel_ftol * max(abs(f_new), 1e-12) else 0
        x.add_(s)
        f, g, gmax = f_new, g_new, gmax_new
        if stalled >= STALL_ITERS:
            reason = "stalled"
            break
    info = FitInfo(n_iter=n_iter, n_evals=ev.n, loss=f, grad_max=gmax,
                   converged=gmax <= tol, stop_reason=reason, start=start)
    return x, info


def _direction(g, old_s, old_y, rho, h_diag) -> torch.Tensor:
    """L-BFGS two-loop recursion: -H g with the stored curvature pairs."""
    q = g.neg()
    alpha = [0.0] * len(old_s)
    for i in range(len(old_s) - 1, -1, -1):
        alpha[i] = float(old_s[i].dot(q)) * rho[i]
        q.add_(old_y[i], alpha=-alpha[i])
    q.mul_(h_diag)
    for i in range(len(old_s)):
        beta = float(old_y[i].dot(q)) * rho[i]
        q.add_(old_s[i], alpha=alpha[i] - beta)
    return q
