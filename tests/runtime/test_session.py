"""Sessions on a real exported artifact: adaptation state, planning, prediction, persistence, errors."""

import json
import shutil

import numpy as np
import pytest
from mbmrl.runtime import ArtifactError, Manifest, Session, load
from mbmrl.runtime.artifact import DIGEST, sha256_file
from mbmrl.runtime.validation import wrapped

OBS = np.array([-1.0, 0.0, 0.0], np.float32)  # hanging down


def _transition(rng):
    th = rng.uniform(-np.pi, np.pi)
    obs = np.array([np.cos(th), np.sin(th), rng.uniform(-1, 1)], np.float32)
    return obs, rng.uniform(-2, 2, 1).astype(np.float32), obs + rng.normal(0, 0.05, 3).astype(np.float32)


def _adapted(rt, mode, n, rng, **kwargs):
    """A session of `mode` that has observed `n` random transitions."""
    s = Session(rt, mode, **kwargs)
    for _ in range(n):
        s.observe(*_transition(rng), -1.0)
    return s


@pytest.fixture(scope="module")
def rt(tiny_artifact):
    return load(tiny_artifact)


def test_recurrent_observe_moves_the_belief_and_none_does_not(rt):
    rng = np.random.default_rng(0)
    rec, none = Session(rt, "recurrent"), Session(rt, "none")
    for _ in range(5):
        o, a, n = _transition(rng)
        s_rec, s_none = rec.observe(o, a, n, -1.0), none.observe(o, a, n, -1.0)
        assert np.isfinite(s_rec) and s_rec >= 0 and np.isfinite(s_none)
    assert not np.allclose(rec.h, rt.h0) and np.array_equal(none.h, rt.h0)
    assert rec.n_observed == none.n_observed == 5
    rec.reset()
    assert np.array_equal(rec.h, rt.h0) and rec.n_observed == 0


def test_surprise_is_the_error_of_the_prior_prediction(rt):
    s = Session(rt, "none")
    o, a, _ = _transition(np.random.default_rng(1))
    pred, _ = s.predict(o, a[None])
    assert s.observe(o, a, pred[0], None) == pytest.approx(0.0, abs=1e-8)
    wrong = pred[0] + rt.norm.delta_std * np.array([1.0, 0, 0], np.float32)
    assert s.observe(o, a, wrong, None) == pytest.approx(1 / 3, rel=1e-3)  # one dim off by one std


def test_act_returns_a_bounded_action_and_a_plan_for_every_mode(rt):
    for mode in rt.modes:
        s = Session(rt, mode, seed=0)
        r = s.act(OBS)
        assert r.action.shape == (1,) and rt.action_low[0] <= r.action[0] <= rt.action_high[0]
        assert r.plan.shape == (15, 1) and r.predicted_obs.shape == (15, 3) and np.isfinite(r.expected_cost)
        np.testing.assert_array_equal(r.action, r.plan[0])


def test_act_is_reproducible_with_a_seed_and_honours_overrides(rt):
    a1 = Session(rt, "recurrent", seed=3).act(OBS).action
    a2 = Session(rt, "recurrent", seed=3).act(OBS).action
    np.testing.assert_array_equal(a1, a2)
    r = Session(rt, "recurrent", seed=0).act(OBS, planner={"horizon": 30, "samples": 64})
    assert r.plan.shape == (30, 1)
    with pytest.raises(ValueError, match="horizon"):
        Session(rt, "recurrent").act(OBS, planner={"horizon": 7})


def test_the_warm_start_repeats_the_last_action_or_appends_the_neutral_one(rt):
    """warm_tail 'repeat' (the default) shifts the plan and repeats its last action; 'neutral' appends the middle
    of the bounds, as PETS's and CaDM's CEM append zeros."""
    for tail in ("repeat", "neutral"):
        s = Session(rt, "none", seed=0, planner={"warm_tail": tail, "samples": 64})
        r = s.act(OBS)
        np.testing.assert_array_equal(s.plan[:-1], r.plan[1:])
        want = r.plan[-1] if tail == "repeat" else (rt.action_low + rt.action_high) / 2
        np.testing.assert_array_equal(s.plan[-1], want)


def test_the_cost_shapes_the_plan(rt):
    # torque is the only action; a huge action cost makes the best plan (near) zero torque
    s = Session(rt, "none", seed=0, planner={"iterations": 5})
    r = s.act(OBS, cost={"r": [1e6], "q": [0.0, 0.0, 0.0]})
    assert abs(r.action[0]) < 0.5


def test_predict_rolls_open_loop_and_bayes_gives_a_variance(rt):
    s = Session(rt, "recurrent")
    pred, var = s.predict(OBS, np.zeros((4, 1)))
    assert pred.shape == (4, 3) and var is None
    b = Session(rt, "bayes", guard=False)  # the adapted posterior itself (a guard may predict with the prior)
    pred, var = b.predict(OBS, np.zeros((4, 1)))
    assert var.shape == (4, 3) and (var > 0).all()
    rng = np.random.default_rng(2)
    for _ in range(10):
        b.observe(*_transition(rng), -1.0)
    _, var_after = b.predict(OBS, np.zeros((4, 1)))
    assert var_after[0].sum() < var[0].sum()  # evidence shrinks the posterior


def test_gradient_mode_adapts_the_head(rt):
    s = Session(rt, "gradient")
    rng = np.random.default_rng(4)
    for _ in range(3):
        s.observe(*_transition(rng), -1.0)
    assert not np.allclose(s.W, rt.W0)


def test_state_dict_round_trip_reproduces_the_next_action(rt):
    rng = np.random.default_rng(5)
    for mode in ("recurrent", "gradient", "bayes"):
        a = _adapted(rt, mode, 4, rng, seed=1)
        a.act(OBS)
        b = Session(rt, mode, seed=99)
        b.load_state_dict(a.state_dict())
        np.testing.assert_array_equal(a.act(OBS).action, b.act(OBS).action)


def test_bad_inputs_raise_value_errors_that_name_the_field(rt):
    s = Session(rt, "recurrent")
    with pytest.raises(ValueError, match="obs must have 3"):
        s.observe([0.0, 1.0], [0.0], [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="next_obs must be finite"):
        s.observe(OBS, [0.0], [np.nan, 0, 0])
    with pytest.raises(ValueError, match="actions must have shape"):
        s.predict(OBS, [[0.0, 1.0]])
    with pytest.raises(ValueError, match="mode"):
        Session(rt, "telepathy")
    with pytest.raises(ValueError, match="cost.q"):
        s.act(OBS, cost={"q": [1.0]})


def test_oracle_sessions_need_the_true_parameters(tiny_artifact):
    ort = load(tiny_artifact / "oracle")
    assert set(ort.modes) == {"oracle"}
    with pytest.raises(ValueError, match="task_params"):
        Session(ort, "oracle")
    s = Session(ort, "oracle", task_params={"mass": 1.0, "length": 1.0})
    assert s.act(OBS).action.shape == (1,)


def test_a_tampered_artifact_is_refused(tiny_artifact, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(tiny_artifact, copy)
    with open(copy / "features.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load(copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["format_version"] = 1  # written before the typed contract: refused with what to do
    (copy / "manifest.json").write_text(json.dumps(m))
    (copy / DIGEST).write_text(sha256_file(copy / "manifest.json"))
    with pytest.raises(ArtifactError, match="format_version 1 is not supported.*re-export"):
        Manifest.load(copy)
    with pytest.raises(ArtifactError, match="no manifest"):
        load(tmp_path)


def test_the_risk_term_steers_bayes_plans_only_when_asked(rt):
    obs = OBS
    plain = Session(rt, "bayes", seed=0).act(obs)
    risky = Session(rt, "bayes", seed=0, cost={"uncertainty_weight": 1e3}).act(obs)
    assert risky.expected_cost > plain.expected_cost  # the same model now also pays for its uncertainty
    rec = Session(rt, "recurrent", seed=0, cost={"uncertainty_weight": 1e3}).act(obs)
    np.testing.assert_array_equal(rec.action, Session(rt, "recurrent", seed=0).act(obs).action)
    with pytest.raises(ValueError, match="uncertainty_weight"):
        Session(rt, "bayes", cost={"uncertainty_weight": -1.0})


def test_bayes_learns_the_noise_scale_online_and_restores_it(rt):
    """Transitions the model cannot explain widen the predictive interval; the estimate survives a restore."""
    assert rt.manifest.modes["bayes"].noise_prior > 1  # the tiny run trains with the default noise prior
    rng = np.random.default_rng(3)
    calm, wild = Session(rt, "bayes", guard=False), Session(rt, "bayes", guard=False)  # the posteriors themselves
    for _ in range(12):
        obs, act, nxt = _transition(rng)
        calm.observe(obs, act, nxt, -1.0)
        wild.observe(obs, act, nxt + rng.normal(0, 2.0, 3).astype(np.float32), -1.0)
    assert (wild.adapter.noise(wild.state) > calm.adapter.noise(calm.state))[:3].all()
    _, v_calm = calm.predict(OBS, np.zeros((1, 1)))
    _, v_wild = wild.predict(OBS, np.zeros((1, 1)))
    assert (v_wild > 3 * v_calm).all()
    restored = Session(rt, "bayes", guard=False)
    restored.load_state_dict(wild.state_dict())
    np.testing.assert_array_equal(restored.predict(OBS, np.zeros((1, 1)))[1], v_wild)


def test_act_predicts_the_states_that_predict_gives_for_its_plan(rt):
    """`act`'s predicted_obs (the weighted sampled trajectories of the one rollout call) are `predict`'s
    states of the plan: exactly for a single sequence, and closely (a fraction of the state scale) when the
    plan averages many; the first step, which the robot executes, to float precision."""
    rng = np.random.default_rng(6)
    for mode in ("recurrent", "gradient", "bayes"):
        s = _adapted(rt, mode, 5, rng, seed=0)
        r = s.act(OBS)
        pred, _ = s.predict(OBS, r.plan)
        np.testing.assert_allclose(r.predicted_obs[0], pred[0], rtol=1e-3, atol=1e-3 * rt.norm.obs_std.max())
        assert (np.abs(r.predicted_obs - pred) <= 0.1 * rt.norm.obs_std).all()
        one = s.act(OBS, planner={"samples": 1})  # the plan is its one sampled sequence
        pred, _ = s.predict(OBS, one.plan)
        np.testing.assert_allclose(one.predicted_obs, pred, rtol=1e-4, atol=1e-4)


def test_a_known_head_is_recovered_from_transitions_it_generated(rt):
    """Transitions generated by a head W*: surprise falls to ~0 and the adapted head predicts like W* on
    new transitions (bayes; W is identified along the features the data excite), or moves toward it
    (gradient: k meta-learned steps from W0 on the window)."""
    rng = np.random.default_rng(7)
    W_star = (rt.W0 + 0.5 * rng.standard_normal(rt.W0.shape)).astype(np.float32)

    def generated(s):  # a transition whose normalized delta and reward are exactly phi @ W*
        obs, act, _ = _transition(rng)
        y = rt.dynamics.features(obs[None], act[None], s.h[None]) @ W_star  # (1, P)
        return obs, act, rt.norm.next_obs(obs[None], y)[0], float(rt.norm.reward(y)[0])

    for mode in ("bayes", "gradient"):
        s = Session(rt, mode, seed=0)
        surprises = [s.observe(*generated(s)) for _ in range(2 * s.adapter.window)]
        held_out = [generated(s)[:2] for _ in range(32)]
        phi = rt.dynamics.features(np.stack([o for o, _ in held_out]), np.stack([a for _, a in held_out]),
                                   np.repeat(s.h[None], 32, 0))
        err = lambda W, phi=phi: float(np.mean((phi @ (W - W_star)) ** 2))  # noqa: E731
        if mode == "bayes":
            assert np.mean(surprises[-8:]) < 0.05 * np.mean(surprises[:8])
            assert err(s.W) < 0.05 * err(rt.W0)  # the prior still pulls a little after 64 transitions
        else:
            assert np.mean(surprises[-8:]) < np.mean(surprises[:8])
            assert err(s.W) < err(rt.W0)


def test_a_periodic_dims_wrap_is_taken_modulo_its_period(tiny_artifact, tmp_path):
    """An artifact whose family wraps an obs dim (the half-cheetah's pitch) adapts to a transition across the wrap
    as to the same transition unwrapped; without the declaration the wrap is a huge surprise."""
    art = tmp_path / "periodic"
    shutil.copytree(tiny_artifact, art)
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["periodic_obs"] = {"2": 4.0}  # obs[2] (the pendulum's rate here) as if wrapped every 4.0
    (art / "manifest.json").write_text(json.dumps(manifest))
    (art / DIGEST).write_text(sha256_file(art / "manifest.json"))
    rt_plain, rt_periodic = load(tiny_artifact), load(art)
    assert rt_periodic.manifest.periodic_obs == {2: 4.0}
    obs, a = np.array([0.0, 1.0, 1.9], np.float32), np.array([0.5], np.float32)
    nxt = np.array([0.01, 1.0, 2.05], np.float32)
    nxt_wrapped = nxt - np.array([0.0, 0.0, 4.0], np.float32)  # 2.05 wrapped into [-2, 2)
    true = Session(rt_periodic, "recurrent")
    surprise = true.observe(obs, a, nxt, -1.0)
    across = Session(rt_periodic, "recurrent")
    assert across.observe(obs, a, nxt_wrapped, -1.0) == pytest.approx(surprise, rel=1e-5)
    np.testing.assert_allclose(across.h, true.h, atol=1e-6)
    assert Session(rt_plain, "recurrent").observe(obs, a, nxt_wrapped, -1.0) > 100 * surprise


def test_a_difference_on_a_periodic_dim_is_taken_into_half_a_period():
    """`wrapped` (sessions, training data, eval): other dims, and no declaration, left untouched."""
    diff = np.array([[6.2, 0.5], [-6.2, 7.0]])
    np.testing.assert_allclose(wrapped(diff, {0: 2 * np.pi}), [[6.2 - 2 * np.pi, 0.5], [2 * np.pi - 6.2, 7.0]])
    assert wrapped(diff, None) is diff
