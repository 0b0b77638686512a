"""Closed-form head adaptation: RLS equals the batch posterior; gradient steps reduce the error."""

import numpy as np
from mbmrl.runtime.adapt import head_gradient_steps, predictive_variance, rls_update


def test_rls_sequence_equals_batch_bayesian_posterior():
    rng = np.random.default_rng(0)
    D, P, M = 6, 3, 20
    W0 = rng.standard_normal((D, P))
    A = rng.standard_normal((D, D))
    lam0 = A @ A.T + np.eye(D)  # prior precision
    phi, y = rng.standard_normal((M, D)), rng.standard_normal((M, P))
    W, Pcov = W0.copy(), np.linalg.inv(lam0)
    for i in range(M):
        W, Pcov = rls_update(W, Pcov, phi[i], y[i])
    lam = lam0 + phi.T @ phi
    np.testing.assert_allclose(W, np.linalg.solve(lam, lam0 @ W0 + phi.T @ y), atol=1e-9)
    np.testing.assert_allclose(Pcov, np.linalg.inv(lam), atol=1e-9)


def test_predictive_variance_shrinks_with_data():
    rng = np.random.default_rng(1)
    D = 4
    P0 = np.eye(D)
    phi = rng.standard_normal((1, D))
    noise = np.array([0.1, 0.2])
    v0 = predictive_variance(P0, phi, noise)
    W, P1 = rls_update(np.zeros((D, 2)), P0, phi[0], np.zeros(2))
    v1 = predictive_variance(P1, phi, noise)
    assert (v1 < v0).all() and (v1 >= noise).all()
    np.testing.assert_allclose(v0, noise * (1 + phi @ phi.T))


def test_gradient_steps_match_the_closed_form_and_descend():
    rng = np.random.default_rng(2)
    phi, y, W0 = rng.standard_normal((16, 5)), rng.standard_normal((16, 2)), rng.standard_normal((5, 2))
    alpha = np.array([0.05, 0.02])
    W1 = head_gradient_steps(W0, phi, y, alpha, 1)
    expected = W0 - alpha * ((2 / 16) * phi.T @ (phi @ W0 - y))
    np.testing.assert_allclose(W1, expected, rtol=1e-5)
    loss = lambda W: np.mean(np.sum((phi @ W - y) ** 2, 1))  # noqa: E731
    W3 = head_gradient_steps(W0, phi, y, alpha, 3)
    assert loss(W3) < loss(W1) < loss(W0)
