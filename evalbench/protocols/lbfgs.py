"""Full-batch torch L-BFGS for scikit-learn's multinomial L2 logistic-regression objective."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


#: Stop when one iteration lowers the loss by less than this. The loss is summed in
#: float64, but float32 per-sample terms leave noise of about 1e-10 in differences of the
#: mean loss; 1e-14 for float64 is close to scipy's ftol (64 * eps) that sklearn uses.
STALL_TOL = {torch.float32: 1e-10, torch.float64: 1e-14}


#: Below this many multiply-adds per objective evaluation, intra-op threading costs more
#: than it saves (OpenMP wake-ups dominate; 5x slower measured on 2 busy cores).
SMALL_WORK = 2e7


@contextlib.contextmanager
def _few_threads_if_small(X: torch.Tensor, k: int):
    """Run tiny CPU fits on one intra-op thread, restoring the caller's setting afterwards."""
    small = X.device.type == "cpu" and X.shape[0] * X.shape[1] * k < SMALL_WORK
    before = torch.get_num_threads()
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@dataclass
class FitInfo:
    """How one L-BFGS fit ended."""

    n_iter: int
    n_evals: int
    loss: float
    grad_max: float
    converged: bool


def softmax_objective(X: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, lam: float):
    """Mean log-loss + 0.5*lam*||W||^2 and its gradient; theta = [W; b] of shape (D+1, K).

    This is scikit-learn's lbfgs objective divided by C*N (lam = 1/(C*N)), so it has the
    same minimiser, and a gradient test on it means the same as sklearn's ``tol``.
    The bias row is not penalised, as in sklearn.
    """
    n, d = X.shape
    W, b = theta[:d], theta[d]
    Z = torch.addmm(b, X, W)
    lse = torch.logsumexp(Z, dim=1)
    rows = torch.arange(n, device=X.device)
    # Sum the loss in float64: L-BFGS's line search and stall test compare losses of
    # nearby iterates, and a float32 sum would hide real decreases below ~1e-7.
    loss = (lse.double().sum() - Z[rows, y].double().sum()) / n + 0.5 * lam * (W.double() ** 2).sum()
    # Reuse Z's buffer for the residual softmax(Z) - onehot(y), scaled by 1/n.
    P = Z.sub_(lse[:, None]).exp_()
    P[rows, y] -= 1.0
    P.div_(n)
    grad = torch.empty_like(theta)
    torch.mm(X.T, P, out=grad[:d])
    grad[:d].add_(W, alpha=lam)
    # The bias gradient is a sum of N terms that nearly cancel; float64 keeps it exact
    # enough to place the (unpenalised, weakly curved) bias where float64 fits put it.
    grad[d] = P.double().sum(dim=0).to(P.dtype)
    return loss, grad


def fit_softmax_lbfgs(
    X: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    theta0: torch.Tensor,
    tol: float,
    max_iter: int,
    history_size: int = 30,
) -> tuple[torch.Tensor, FitInfo]:
    """Minimise softmax_objective from theta0 with torch L-BFGS (strong Wolfe line search).

    Stops when max|grad| <= tol (scipy/sklearn's ``gtol`` test, on the same scaled
    objective), when an iteration lowers the loss by less than STALL_TOL, or after
    max_iter iterations. A warm start that already passes the test returns at once; the
    caller keeps tol tight (1e-6) so that this only happens when the start is a genuine
    solution of the new problem.

    Args:
        X: (N, D) features on the target device and dtype.
        y: (N,) int64 class indices in [0, K).
        lam: L2 strength in mean-loss form, 1 / (C * N).
        theta0: (D+1, K) starting point (copied, not modified).
        tol: gradient tolerance (max-abs).
        max_iter: L-BFGS iteration cap (function evaluations capped at 1.25x).
        history_size: L-BFGS memory.

    Returns:
        (theta, FitInfo).
    """
    theta = theta0.detach().clone().requires_grad_(True)
    stall = STALL_TOL[X.dtype]
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.25),
        tolerance_grad=tol,
        tolerance_change=stall,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )
    last = {}

    def closure():
        with torch.no_grad():
            loss, grad = softmax_objective(X, y, theta.detach(), lam)
        theta.grad = grad
        last["loss"], last["grad"] = loss, grad
        return loss

    with _few_threads_if_small(X, theta.shape[1]):
        opt.step(closure)
    state = opt.state[theta]
    grad_max = float(last["grad"].abs().max())
    info = FitInfo(
        n_iter=int(state.get("n_iter", 0)),
        n_evals=int(state.get("func_evals", 0)),
        loss=float(last["loss"]),
        grad_max=grad_max,
        converged=grad_max <= tol,
    )
    return theta.detach(), info
