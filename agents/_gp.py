"""A small exact Gaussian-process regressor for the BO agent (numpy + scipy only).

The model is scikit-optimize's default GP, optionally with an additive term, written out
so that the marginal-likelihood gradient costs O(n^2 d) instead of building an (n, n, d)
tensor per call as scikit-learn's ``Matern.__call__`` does with ``eval_gradient``:

* kernel ``k(x, x') = s2 * matern52(r) + noise * [x == x']`` with
  ``r^2 = sum_d (x_d - x'_d)^2 / l_d^2`` (one length scale per input, ARD) and
  ``matern52(r) = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)`` (Rasmussen and
  Williams, *Gaussian Processes for Machine Learning*, 2006, eq. 4.17);
* ``additive=True`` adds ``sa * sum_d matern52(|x_d - x'_d| / l_d)`` (the first-order
  additive kernel of Duvenaud, Nickisch and Rasmussen, "Additive Gaussian Processes",
  NeurIPS 2011; same length scales): a cost that is a sum or product of per-parameter
  effects, as a latency summed over layers is, is then learnt from far fewer designs
  and extrapolated to value combinations never evaluated together;
* targets normalised to zero mean and unit variance before the fit;
* hyperparameters (log amplitudes, log length scales, log noise) fitted by L-BFGS-B on the
  negative log marginal likelihood (R&W eq. 5.8, gradient eq. 5.9), from a fixed start and
  from the last fit (warm start), keeping the better.

Deterministic: no randomness; the caller fixes the BLAS thread count.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MaternGP"]

_SQRT5 = math.sqrt(5.0)
_JITTER = 1e-8
# bounds of the log hyperparameters: amplitude and length scales as scikit-optimize's default GP
_LOG_S2 = (math.log(0.01), math.log(1000.0))
_LOG_L = (math.log(0.01), math.log(100.0))
_LOG_NOISE = (math.log(1e-6), math.log(1.0))


def _matern52(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """matern52(r) and g(r) = -(dk/dr) / r = 5/3 (1 + sqrt5 r) exp(-sqrt5 r) (no division by r)."""
    e = np.exp(-_SQRT5 * r)
    return (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * e, (5.0 / 3.0) * (1.0 + _SQRT5 * r) * e


class MaternGP:
    """Exact GP regression: constant x Matern-5/2 ARD kernel (plus, with ``additive``, a
    first-order additive Matern-5/2 kernel) plus white noise.

    ``fit(X, y)`` fits the hyperparameters (``optimize=True``, at most ``max_iter``
    L-BFGS-B iterations per start) or reuses the last ones (``optimize=False``);
    ``predict(Xs)`` returns the posterior mean of the latent function on the original
    ``y`` scale, and with ``return_std=True`` its standard deviation too (as
    scikit-learn's regressors do).  ``theta`` holds ``(log s2, log l_1..l_d,
    log noise[, log sa])``.
    """

    def __init__(self, max_iter: int = 50, additive: bool = False) -> None:
        self.max_iter = max_iter
        self.additive = additive
        self.theta: np.ndarray | None = None
        self.X_train_: np.ndarray | None = None

    def _unpack(self, theta: np.ndarray, d: int):
        s2, inv_l, noise = math.exp(theta[0]), np.exp(-theta[1:1 + d]), math.exp(theta[1 + d])
        return s2, inv_l, noise, (math.exp(theta[2 + d]) if self.additive else 0.0)

    # --- marginal likelihood ---------------------------------------------------------------
    def _nll(self, theta: np.ndarray, D2: np.ndarray, Dabs: np.ndarray | None, y: np.ndarray):
        """Negative log marginal likelihood and its gradient in ``theta``."""
        from scipy.linalg import cho_solve, cholesky
        from scipy.linalg.lapack import dpotri

        n, _, d = D2.shape
        s2, inv_l, noise, sa = self._unpack(theta, d)
        inv_l2 = inv_l * inv_l
        m, g = _matern52(np.sqrt(np.maximum(D2 @ inv_l2, 0.0)))  # (n, n)
        Kp = s2 * m
        K = Kp.copy()
        if self.additive:
            R = Dabs * inv_l  # (n, n, d): per-input scaled distances
            ma, ga = _matern52(R)
            Ka = sa * ma.sum(axis=2)
            K += Ka
        K[np.diag_indices(n)] += noise + _JITTER
        try:
            L = cholesky(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        alpha = cho_solve((L, True), y, check_finite=False)
        nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
        Kinv, _ = dpotri(L, lower=1)  # K^-1 from its Cholesky factor (lower triangle only)
        Kinv = np.tril(Kinv) + np.tril(Kinv, -1).T
        W = np.outer(alpha, alpha) - Kinv
        grad = np.empty_like(theta)
        grad[0] = -0.5 * float((W * Kp).sum())
        # dKp/dlog l_d = s2 * g(r) * (x_id - x_jd)^2 / l_d^2
        grad[1:1 + d] = -0.5 * (D2.reshape(n * n, d).T @ (W * g * s2).ravel()) * inv_l2
        grad[1 + d] = -0.5 * noise * float(np.trace(W))
        if self.additive:
            # dKa/dlog l_d = sa * g(r_d) * r_d^2 with r_d = |x_id - x_jd| / l_d
            grad[1:1 + d] += -0.5 * sa * ((ga * R * R).reshape(n * n, d).T @ W.ravel())
            grad[2 + d] = -0.5 * float((W * Ka).sum())
        return nll, grad

    # --- public ------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, optimize: bool = True) -> "MaternGP":
        """Fit to inputs ``X`` (n, d) and targets ``y`` (n,); returns self."""
        from scipy.linalg import cho_solve, cholesky
        from scipy.optimize import minimize

        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n, d = X.shape
        self._mu = float(y.mean())
        self._sd = float(y.std()) or 1.0
        yn = (y - self._mu) / self._sd
        diff = X[:, None, :] - X[None, :, :]
        D2 = diff * diff  # (n, n, d)
        Dabs = np.abs(diff) if self.additive else None
        k = d + 3 if self.additive else d + 2
        # amplitudes split between the two kernels at the start
        default = np.concatenate([[0.0 if not self.additive else math.log(0.5)], np.zeros(d), [math.log(1e-2)],
                                  [math.log(0.5 / d)] if self.additive else []])
        if self.theta is None or self.theta.shape[0] != k:
            self.theta = default
            optimize = True
        if optimize and n >= 2:
            # from the default start and from the last fit (warm start), keeping the better: a
            # warm start alone can stay in the degenerate optimum an early fit on a few points
            # found (every length scale at its lower bound: each observation explains itself)
            bounds = [_LOG_S2] + [_LOG_L] * d + [_LOG_NOISE] + ([_LOG_S2] if self.additive else [])
            lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
            opts = {"maxiter": self.max_iter} if self.max_iter else {}
            best = None
            for x0 in (default, np.clip(self.theta, lo, hi)):
                if best is not None and np.array_equal(x0, default):
                    continue
                res = minimize(self._nll, x0, args=(D2, Dabs, yn), jac=True, method="L-BFGS-B", bounds=bounds,
                               options=opts)
                if np.all(np.isfinite(res.x)) and (best is None or res.fun < best[0]):
                    best = (float(res.fun), np.array(res.x))
            if best is not None:
                self.theta = best[1]
        s2, inv_l, noise, sa = self._unpack(self.theta, d)
        K = s2 * _matern52(np.sqrt(np.maximum(D2 @ (inv_l * inv_l), 0.0)))[0]
        if self.additive:
            K += sa * _matern52(Dabs * inv_l)[0].sum(axis=2)
        K[np.diag_indices(n)] += noise + _JITTER
        self._L = cholesky(K, lower=True, check_finite=False)
        self._alpha = cho_solve((self._L, True), yn, check_finite=False)
        self.X_train_ = X
        return self

    def _cross(self, Xs: np.ndarray) -> np.ndarray:
        """k(Xs, X_train) and the prior variance k(x, x) of each row."""
        d = Xs.shape[1]
        s2, inv_l, _, sa = self._unpack(self.theta, d)
        a, b = Xs * inv_l, self.X_train_ * inv_l
        r2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        Ks = s2 * _matern52(np.sqrt(np.maximum(r2, 0.0)))[0]
        if self.additive:
            for j in range(d):  # one input at a time: an (m, n, d) tensor can be large
                Ks += sa * _matern52(np.abs(a[:, j, None] - b[None, :, j]))[0]
        return Ks, s2 + sa * d

    def predict(self, Xs: np.ndarray, return_std: bool = False):
        """Posterior mean (and standard deviation, if ``return_std``) at ``Xs`` (m, d)."""
        from scipy.linalg import solve_triangular

        Ks, prior = self._cross(np.asarray(Xs, dtype=float))
        mean = Ks @ self._alpha * self._sd + self._mu
        if not return_std:
            return mean
        v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        var = np.maximum(prior - (v * v).sum(0), 1e-12)
        return mean, np.sqrt(var) * self._sd
