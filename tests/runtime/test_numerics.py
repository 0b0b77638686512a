"""No input a client can send makes a session answer with non-finite numbers or poisons its state."""

import dataclasses

import numpy as np
import pytest
from mbmrl.runtime import Session, load
from mbmrl.runtime import session as session_module
from mbmrl.runtime.planner import mppi_weights
from mbmrl.runtime.types import PlanningError

OBS = np.array([-1.0, 0.0, 0.0], np.float32)
T = {"obs": [1.0, 0.0, 0.0], "action": [0.5], "next_obs": [0.99, 0.05, 0.4], "reward": -0.1}


@pytest.fixture(scope="module")
def rt(tiny_artifact):
    return load(tiny_artifact)


def _finite(r):
    return all(np.isfinite(x).all() for x in (r.action, r.plan, r.predicted_obs, r.expected_cost))


def test_mppi_weights_survive_an_underflowing_temperature():
    w = mppi_weights(np.array([3.0, 1.0, 2.0, 1.0]), 5e-324)
    assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0) and w[0] == w[2] == 0.0


def test_a_degenerate_planner_never_gives_a_nan_action_or_a_broken_session(rt):
    s = Session(rt, "recurrent", seed=0)
    assert _finite(s.act(OBS, planner={"temperature": 5e-324, "noise_scale": 0.001}))
    assert _finite(s.act(OBS)) and np.isfinite(s.plan).all()  # the warm start stays usable


@pytest.mark.parametrize("mode", ["recurrent", "gradient", "bayes"])
def test_an_absurd_transition_is_refused_and_leaves_the_session_untouched(rt, mode):
    s = Session(rt, mode, seed=0)
    s.observe(**T)
    before = (s.h.copy(), s.W.copy(), s.n_observed)
    for bad, field in (({"obs": [3e38] * 3, "next_obs": [-3e38] * 3}, "obs"),
                       ({"next_obs": [1e20, 0.0, 0.0]}, "next_obs - obs"),
                       ({"reward": 1e30}, "reward")):
        with pytest.raises(ValueError, match=field):
            s.observe(**{**T, **bad})
    np.testing.assert_array_equal(s.h, before[0])
    np.testing.assert_array_equal(s.W, before[1])
    assert s.n_observed == before[2]
    r = s.act(OBS)
    assert _finite(r) and not r.fallback
    pred, _ = s.predict(OBS, np.zeros((3, 1)))
    assert np.isfinite(pred).all()


def test_an_observe_batch_is_applied_whole_or_not_at_all(rt):
    s = Session(rt, "bayes", seed=0)
    with pytest.raises(ValueError, match=r"transitions\[2\]\.obs"):
        s.observe_many([T, T, {**T, "obs": [1e39, 0.0, 0.0]}])
    assert s.n_observed == 0 and len(s.state.phi) == 0
    assert len(s.observe_many([T, T])) == 2 and s.n_observed == 2


def test_act_and_predict_refuse_an_absurd_observation(rt):
    s = Session(rt, "recurrent", seed=0)
    for call in (lambda: s.act([3e38, 0.0, 0.0]), lambda: s.predict([3e38, 0.0, 0.0], [[0.0]])):
        with pytest.raises(ValueError, match=r"obs\[0\]"):
            call()


def test_act_falls_back_to_the_last_finite_plan_and_says_so(rt, monkeypatch):
    s = Session(rt, "recurrent", seed=0)
    first = s.act(OBS)
    warm = s.plan.copy()
    monkeypatch.setattr(session_module, "plan_with_weights",
                        lambda objective, mean, *a, **k: (np.full_like(mean, np.nan), np.zeros(0)))
    r = s.act(OBS)
    assert r.fallback and _finite(r)
    np.testing.assert_array_equal(r.plan, warm)  # the shifted previous plan
    assert not first.fallback


def test_a_model_that_diverges_everywhere_is_an_error_not_a_nan(rt):
    class Diverging:
        horizons = rt.dynamics.horizons

        def __getattr__(self, name):
            return getattr(rt.dynamics, name)

        def rollout(self, obs, h, W, actions, terms):
            costs, states = rt.dynamics.rollout(obs, h, W, actions, terms)
            return costs * np.nan, states

    s = Session(dataclasses.replace(rt, dynamics=Diverging()), "recurrent", seed=0)
    with pytest.raises(PlanningError, match="non-finite"):
        s.act(OBS)
