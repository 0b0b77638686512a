"""Mode objects: exact algebra, the sliding window, and recovery of a known head."""

import numpy as np
import pytest
from mbmrl.runtime.modes import BayesHead, GradientHead, PriorHead
from mbmrl.runtime.modes.bayes import bayes_posterior, predictive_variance
from mbmrl.runtime.modes.gradient import gradient_head

D, P = 6, 3


def _data(rng, n, W):
    phi = rng.standard_normal((n, D))
    return phi, phi @ W


def _fold(mode, phi, y):
    state = mode.init()
    for p, t in zip(phi, y, strict=True):
        state = mode.fold(state, p, t)
    return state


def test_bayes_window_holds_the_last_transitions_and_equals_the_batch_posterior():
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((D, P))
    A = rng.standard_normal((D, D))
    P0 = np.linalg.inv(A @ A.T + np.eye(D))
    mode = BayesHead(W0.astype(np.float32), P0, np.full(P, 0.1), window=8, noise_prior=3.0)
    phi, y = rng.standard_normal((20, D)), rng.standard_normal((20, P))
    state = _fold(mode, phi, y)
    assert len(state.phi) == 8
    W, Pc = bayes_posterior(W0.astype(np.float32).astype(np.float64), np.linalg.inv(P0), phi[-8:], y[-8:])
    np.testing.assert_allclose(state.W, W, atol=1e-9)
    np.testing.assert_allclose(state.P, Pc, atol=1e-9)
    # the first 12 transitions no longer matter: a session that saw only the last 8 agrees
    np.testing.assert_allclose(_fold(mode, phi[-8:], y[-8:]).W, state.W, atol=1e-12)


def test_bayes_recovers_a_known_head_and_its_variance_shrinks():
    rng = np.random.default_rng(1)
    W_true = rng.standard_normal((D, P))
    mode = BayesHead(np.zeros((D, P), np.float32), 1e4 * np.eye(D), np.full(P, 1e-4), window=64)  # weak prior
    phi, y = _data(rng, 64, W_true)
    state = _fold(mode, phi, y)
    np.testing.assert_allclose(mode.head(state), W_true, atol=1e-3)
    probe = rng.standard_normal((1, D))
    assert (mode.variance(state, probe) < mode.variance(mode.init(), probe)).all()
    prior = predictive_variance(1e4 * np.eye(D), probe, mode.noise_var)
    np.testing.assert_allclose(mode.variance(mode.init(), probe), prior)


def test_gradient_steps_match_the_closed_form_descend_and_converge_to_a_known_head():
    rng = np.random.default_rng(2)
    phi, y, W0 = rng.standard_normal((16, 5)), rng.standard_normal((16, 2)), rng.standard_normal((5, 2))
    alpha = np.array([0.05, 0.02])
    W1 = gradient_head(W0, phi, y, alpha, 1)
    np.testing.assert_allclose(W1, W0 - alpha * ((2 / 16) * phi.T @ (phi @ W0 - y)), rtol=1e-5)
    loss = lambda W: np.mean(np.sum((phi @ W - y) ** 2, 1))  # noqa: E731
    assert loss(gradient_head(W0, phi, y, alpha, 3)) < loss(W1) < loss(W0)
    W_true = rng.standard_normal((D, P))
    mode = GradientHead(np.zeros((D, P), np.float32), np.full(P, 0.2), steps=300, window=32)
    state = _fold(mode, *_data(rng, 40, W_true))
    assert len(state.phi) == 32
    np.testing.assert_allclose(mode.head(state), W_true, atol=1e-3)


def test_prior_heads_never_move():
    W0 = np.ones((D, P), np.float32)
    for mode in (PriorHead("none", W0, False), PriorHead("recurrent", W0, True)):
        state = _fold(mode, *_data(np.random.default_rng(3), 5, np.zeros((D, P))))
        assert mode.head(state) is W0 and mode.variance(state, np.ones((1, D))) is None
    with pytest.raises(AttributeError):
        mode.adapts_belief = False  # frozen: modes hold settings, sessions hold state


def test_a_session_can_adapt_on_another_window_and_says_which(tiny_artifact):
    from mbmrl.runtime.loader import load
    from mbmrl.runtime.session import Session

    rt = load(tiny_artifact)
    obs = np.asarray(rt.norm.obs_mean, np.float32)
    for mode in ("gradient", "bayes"):
        default, longer = Session(rt, mode), Session(rt, mode, window=40)
        assert default.info()["window"] == rt.manifest.modes[mode].window and longer.info()["window"] == 40
        for k in range(45):
            for s in (default, longer):
                s.observe(obs, [0.1], obs + 0.01 * np.sin(k), -1.0)
        assert len(longer.state.phi) == 40 and len(default.state.phi) == rt.manifest.modes[mode].window
    assert Session(rt, "recurrent", window=40).info()["window"] is None  # no window to change
    with pytest.raises(ValueError, match="window must be at least 1"):
        Session(rt, "bayes", window=0)
