"""The BO agent's exact GP (agents/_gp.py) against independent references.

* the marginal-likelihood gradient against central finite differences of the likelihood;
* with the hyperparameters fixed, the posterior mean and standard deviation against
  scikit-learn's ``GaussianProcessRegressor`` with the same kernel (constant x Matern-5/2
  ARD + white noise, optimizer=None), which shares no code with it;
* the additive kernel against a direct double loop over pairs of points.
"""

import math

import numpy as np
import pytest

from agents._gp import MaternGP


def _data(n=18, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = np.sin(X @ np.arange(1.0, d + 1)) + 0.1 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("additive", [False, True])
def test_likelihood_gradient_matches_finite_differences(additive):
    X, y = _data()
    y = (y - y.mean()) / y.std()
    gp = MaternGP(additive=additive)
    d = X.shape[1]
    diff = X[:, None, :] - X[None, :, :]
    D2, Dabs = diff * diff, (np.abs(diff) if additive else None)
    theta = np.random.default_rng(1).normal(0.0, 0.5, d + 3 if additive else d + 2)
    _, grad = gp._nll(theta, D2, Dabs, y)
    h = 1e-6
    num = np.array([(gp._nll(theta + e, D2, Dabs, y)[0] - gp._nll(theta - e, D2, Dabs, y)[0]) / (2 * h)
                    for e in np.eye(theta.size) * h])
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)


def test_posterior_equals_scikit_learn_with_the_same_kernel():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    X, y = _data()
    gp = MaternGP(max_iter=30).fit(X, y)
    d = X.shape[1]
    s2, inv_l, noise, _ = gp._unpack(gp.theta, d)
    # sklearn's normalize_y scales by the sample std (ddof=0), as MaternGP does
    kernel = ConstantKernel(s2, "fixed") * Matern(1.0 / inv_l, "fixed", nu=2.5) + WhiteKernel(noise + 1e-8, "fixed")
    ref = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True, alpha=0.0).fit(X, y)
    Xs = np.random.default_rng(2).random((25, d))
    mu, sd = gp.predict(Xs, return_std=True)
    rmu, rsd = ref.predict(Xs, return_std=True)
    np.testing.assert_allclose(mu, rmu, rtol=1e-6, atol=1e-8)
    # sklearn's std includes the white-noise term; ours is the latent function's
    np.testing.assert_allclose(sd**2 + (noise + 1e-8) * y.std() ** 2, rsd**2, rtol=1e-5, atol=1e-10)


def test_additive_kernel_matches_a_double_loop():
    X, y = _data(n=7, d=3)
    gp = MaternGP(max_iter=10, additive=True).fit(X, y)
    s2, inv_l, _, sa = gp._unpack(gp.theta, 3)

    def m52(r):
        return (1 + math.sqrt(5) * r + 5 * r * r / 3) * math.exp(-math.sqrt(5) * r)

    Xs = np.random.default_rng(3).random((4, 3))
    K, prior = gp._cross(Xs)
    for i in range(4):
        for j in range(7):
            r = math.sqrt(sum(((Xs[i, k] - X[j, k]) * inv_l[k]) ** 2 for k in range(3)))
            want = s2 * m52(r) + sa * sum(m52(abs(Xs[i, k] - X[j, k]) * inv_l[k]) for k in range(3))
            assert K[i, j] == pytest.approx(want, rel=1e-12)
    assert prior == pytest.approx(s2 + 3 * sa)


def test_fit_is_deterministic_and_reuses_hyperparameters():
    X, y = _data()
    a, b = MaternGP().fit(X, y), MaternGP().fit(X, y)
    assert np.array_equal(a.theta, b.theta)
    theta = a.theta.copy()
    a.fit(X[:-3], y[:-3], optimize=False)  # new data, same kernel
    assert np.array_equal(a.theta, theta)
