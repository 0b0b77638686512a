"""The adaptation guard: scoring both predictors, the switch with hysteresis, and sessions that fall back."""

from __future__ import annotations

import numpy as np
import pytest
from mbmrl.runtime.guard import GuardConfig, fold_guard, guard_report, init_guard, mix, one_step_weight, ratios

OBS_DIM, ACT_DIM = 2, 1
STD = np.ones(OBS_DIM, np.float32)


def features(obs, action, h):  # (B, O), (B, A), (B, 1) -> (B, O + A): a linear model; h is unused
    return np.concatenate([obs, action], axis=1).astype(np.float32)


def next_state(obs, out):  # (B, O), (B, P) -> (B, O): out holds the delta (delta_std 1, mean 0)
    return (obs + out[:, :OBS_DIM]).astype(np.float32)


def head(gain: float) -> np.ndarray:
    """W (OBS_DIM + ACT_DIM, OBS_DIM + 1): delta = gain * (-0.1 x + u) per obs entry (reward column zero)."""
    W = np.zeros((OBS_DIM + ACT_DIM, OBS_DIM + 1), np.float32)
    W[:OBS_DIM, :OBS_DIM] = -0.1 * gain * np.eye(OBS_DIM)
    W[OBS_DIM, :OBS_DIM] = gain
    return W


def system(gain: float, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    return x + next_state(x[None], features(x[None], u[None], np.zeros((1, 1))) @ head(gain))[0] - x


def fly(cfg, g, gains, W_adapted, W_prior, steps, rng, x=None):
    """Feed `steps` transitions of a system with `gains` (one per step or a constant) into guard state g."""
    h = np.zeros(1, np.float32)
    x = np.zeros(OBS_DIM, np.float32) if x is None else x
    history = []
    for t in range(steps):
        u = rng.uniform(-1, 1, ACT_DIM).astype(np.float32)
        gain = gains[t] if isinstance(gains, list) else gains
        nxt = system(gain, x, u)
        g = fold_guard(cfg, g, x, u, nxt, h, W_adapted, h, W_prior, features, next_state, STD)
        history.append(bool(g.adapted))
        x = nxt
    return g, history, x


def test_an_adapted_model_that_predicts_better_is_used_after_min_observed_and_one_that_predicts_worse_never():
    rng = np.random.default_rng(0)
    cfg = GuardConfig(horizon=5, min_observed=4, plan_after=0)
    g, used, _ = fly(cfg, init_guard(OBS_DIM), 2.0, head(2.0), head(1.0), 20, rng)  # adapted = the true system
    assert used[:3] == [False] * 3 and all(used[4:])
    report = guard_report(g, cfg)
    assert report["model"] == "adapted" and report["scored"] == 20 and report["switches"] == 1
    assert report["one_step"]["adapted"] == pytest.approx(0, abs=1e-10) and report["one_step"]["prior"] > 0.01
    assert report["multi_step"]["prior"] > report["one_step"]["prior"]  # open-loop errors grow with the horizon

    g, used, _ = fly(cfg, init_guard(OBS_DIM), 1.0, head(2.0), head(1.0), 20, rng)  # the prior is the true system
    assert not any(used) and guard_report(g, cfg)["model"] == "prior"


def test_falls_back_when_the_system_changes_and_comes_back_with_hysteresis():
    rng = np.random.default_rng(1)
    cfg = GuardConfig(horizon=5, forget=0.8, leave=1.0, hysteresis=0.2, min_observed=2, plan_after=0)
    W_adapted, W_prior = head(2.0), head(1.0)
    g, used, x = fly(cfg, init_guard(OBS_DIM), 2.0, W_adapted, W_prior, 30, rng)
    assert used[-1]
    # the system turns into what the prior predicts: the adapted belief is now wrong, the guard falls back
    g, used, x = fly(cfg, g, 1.0, W_adapted, W_prior, 30, rng, x)
    assert not used[-1] and used.index(False) < 10
    assert int(g.switches) == 2
    # and back: the adapted model is trusted again only once it is clearly better
    g, used, x = fly(cfg, g, 2.0, W_adapted, W_prior, 30, rng, x)
    assert used[-1] and int(g.switches) == 3


def test_hysteresis_keeps_the_choice_between_enter_and_leave():
    cfg = GuardConfig(leave=1.0, hysteresis=0.2)
    from mbmrl.runtime.guard import choose

    between = np.array([0.9, 1.0, 0.9, 1.0])  # ratio 0.9: above enter (0.8), below leave (1.0)
    assert choose(cfg, between, adapted=True, scored=30) is True
    assert choose(cfg, between, adapted=False, scored=30) is False
    assert choose(cfg, np.array([0.7, 1.0, 0.7, 1.0]), adapted=False, scored=30) is True
    # both errors must be better: a good one-step error does not excuse a bad multi-step one
    assert choose(cfg, np.array([0.1, 1.0, 1.5, 1.0]), adapted=True, scored=30) is False
    assert ratios(np.array([0.5, 1.0, 3.0, 2.0])) == (0.5, 1.5)


def test_plans_wait_for_plan_after_transitions_while_one_step_predictions_do_not():
    """`plan_after` (24): an adapted model clearly better on every error still does not plan before 24 scored
    transitions (a belief from a few transitions can fail a swing-up the prior manages), while one-step
    predictions may use it from `min_observed` (4) on; `plan_after=0` leaves `min_observed` alone in charge."""
    from mbmrl.runtime.guard import choose

    better = np.array([0.5, 1.0, 0.5, 1.0, 0.5, 1.0])
    cfg = GuardConfig()
    assert cfg.plan_after == 24 and cfg.min_observed == 4
    assert [choose(cfg, better, False, n) for n in (3, 4, 23, 24)] == [False, False, False, True]
    assert [choose(cfg, better, False, n, one_step=True) for n in (3, 4, 23)] == [False, True, True]
    early = GuardConfig(plan_after=0)
    assert [choose(early, better, False, n) for n in (3, 4)] == [False, True]
    assert GuardConfig.from_dict({"plan_after": 8}).plan_after == 8
    with pytest.raises(ValueError, match="plan_after"):
        GuardConfig.from_dict({"plan_after": -1})


def test_a_gap_between_transitions_restarts_the_open_loop_tracks():
    rng = np.random.default_rng(2)
    cfg = GuardConfig(horizon=8)
    g, _, x = fly(cfg, init_guard(OBS_DIM), 2.0, head(2.0), head(1.0), 10, rng)
    assert g.x.shape[1] == cfg.horizon - 1
    u = np.zeros(ACT_DIM, np.float32)
    jumped = x + 5.0  # not where the last transition ended (a reset, or a dropped message)
    g2 = fold_guard(cfg, g, jumped, u, system(2.0, jumped, u), np.zeros(1, np.float32), head(2.0),
                    np.zeros(1, np.float32), head(1.0), features, next_state, STD)
    assert g2.x.shape[1] == 1  # only the track that starts at the new state


def test_a_diverging_prediction_scores_a_finite_cap():
    cfg = GuardConfig(horizon=3, min_observed=0, plan_after=0)
    W_bad = head(1.0) * np.float32(1e30)
    x, u = np.ones(OBS_DIM, np.float32), np.ones(ACT_DIM, np.float32)
    with np.errstate(over="ignore"):
        g = fold_guard(cfg, init_guard(OBS_DIM), x, u, system(1.0, x, u), np.zeros(1, np.float32), W_bad,
                       np.zeros(1, np.float32), head(1.0), features, next_state, STD)
    assert np.isfinite(g.errors).all() and not bool(g.adapted) and np.isfinite(g.x).all()


def test_objective_compares_the_predictors_on_the_dims_the_cost_reads():
    """The adapted model gets dim 0 right and dim 1 a little wrong, the prior the other way round and worse: on
    every dim alike the adapted model is better; with `objective` the guard sees that the cost reads only dim 1."""
    from mbmrl.runtime.cost import Cost

    adapted, prior = head(2.0), head(2.0)
    adapted[:, 1], prior[:, 0] = head(1.5)[:, 1], head(1.0)[:, 0]
    cost = Cost(target=np.zeros(OBS_DIM, np.float32), q=np.array([0.0, 1.0], np.float32), r=np.zeros(1, np.float32))
    for objective, uses_adapted in ((0.0, True), (20.0, False)):
        cfg = GuardConfig(horizon=5, objective=objective)
        weights = cfg.dim_weights(cost)
        g, h = init_guard(OBS_DIM), np.zeros(1, np.float32)
        x, rng = np.zeros(OBS_DIM, np.float32), np.random.default_rng(0)
        for _ in range(30):  # the system is head(2.0) on both dims
            u = rng.uniform(-1, 1, ACT_DIM).astype(np.float32)
            nxt = system(2.0, x, u)
            g = fold_guard(cfg, g, x, u, nxt, h, adapted, h, prior, features, next_state, STD, weights)
            x = nxt
        assert bool(g.adapted) is uses_adapted, objective
    assert GuardConfig().dim_weights(cost) is None
    np.testing.assert_allclose(GuardConfig(objective=3.0).dim_weights(cost), [1.0, 4.0])


@pytest.mark.parametrize("bad", [{"horizon": 0}, {"forget": 1.0}, {"leave": 0}, {"hysteresis": 1.0},
                                 {"min_observed": -1}, {"enter": 0.5}, {"objective": -1.0}, {"blend": -1.0}])
def test_bad_settings_are_refused_with_the_field_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        GuardConfig.from_dict(bad)


def test_one_step_weight_leans_on_the_predictor_with_the_lower_recent_error():
    """The adapted model's weight: none before min_observed; then e_prior^p / (e_adapted^p + e_prior^p) of the
    recent one-step errors, so the better predictor gets most weight and a noisy lead never all of it; blend 0
    gives the whole weight to the one with the lower error."""
    rng = np.random.default_rng(0)
    cfg = GuardConfig(horizon=3, min_observed=4)
    g, _, x = fly(cfg, init_guard(OBS_DIM), 1.2, head(1.25), head(1.0), 3, rng)
    assert one_step_weight(cfg, g) == 0.0  # 3 < min_observed
    g, _, _ = fly(cfg, g, 1.2, head(1.25), head(1.0), 10, rng, x)  # the adapted head is the nearer one
    ea, ep = g.errors[4], g.errors[5]
    assert ea < ep
    w = one_step_weight(cfg, g)
    assert 0.5 < w < 1.0 and w == pytest.approx(ep**4 / (ea**4 + ep**4))
    assert one_step_weight(GuardConfig(horizon=3, blend=1.0), g) == pytest.approx(ep / (ea + ep))
    assert one_step_weight(GuardConfig(horizon=3, blend=0.0), g) == 1.0
    assert guard_report(g, cfg)["one_step_weight"] == w


def test_mix_is_the_mixture_of_the_predictions():
    a, b = np.array([[1.0, 2.0]]), np.array([[3.0, 2.0]])
    va, vb = np.array([[0.5, 1.0]]), np.array([[1.5, 1.0]])
    mean, var = mix([(0.25, a, va), (0.75, b, vb)])
    np.testing.assert_allclose(mean, [[2.5, 2.0]])
    np.testing.assert_allclose(var, [[0.25 * 0.5 + 0.75 * 1.5 + 0.25 * 0.75 * 4.0, 1.0]])  # spread of the means too
    assert mix([(0.5, a, va), (0.5, b, None)])[1] is None
    alone = mix([(1.0, a, va)])
    assert alone[0] is a and alone[1] is va  # one predictor: its own numbers, exactly


# ------------------------------------------------------------------------------------ sessions on a real artifact
@pytest.fixture(scope="module")
def rt(tiny_artifact):
    from mbmrl.runtime import load

    return load(tiny_artifact)


def _random_state(rng) -> np.ndarray:
    th = rng.uniform(-np.pi, np.pi)
    return np.array([np.cos(th), np.sin(th), rng.uniform(-1, 1)], np.float32)


def _generated(rt, h, W, rng):
    """ACT_DIM transition whose normalized delta and reward are exactly the model (h, W)'s prediction."""
    obs, act = _random_state(rng), rng.uniform(-2, 2, 1).astype(np.float32)
    y = rt.dynamics.features(obs[None], act[None], h[None]) @ W  # (1, P)
    return obs, act, rt.norm.next_obs(obs[None], y)[0], float(rt.norm.reward(y)[0])


# forgets faster than the default, plans from min_observed: a short test
GUARD = {"horizon": 5, "min_observed": 4, "plan_after": 0, "forget": 0.8}


@pytest.mark.parametrize("mode", ["bayes", "gradient"])
def test_a_session_whose_belief_gets_the_system_wrong_falls_back_to_the_prior(rt, mode):
    """ACT_DIM session adapts to a system the prior gets wrong and plans with its adapted model; then the system
    becomes the one the prior knows (a payload dropped): the adapted belief is now the wrong one, and the
    session falls back to the prior (plans and predictions exactly those of mode `none`) within a few
    transitions, while its head keeps adapting underneath."""
    from mbmrl.runtime import Session

    rng = np.random.default_rng(0)
    W_star = (rt.W0 + 0.5 * rng.standard_normal(rt.W0.shape)).astype(np.float32)
    s = Session(rt, mode, seed=0, guard=GUARD)
    none = Session(rt, "none", seed=0)
    actions = rng.uniform(-2, 2, (6, 1)).astype(np.float32)
    for _ in range(2 * s.adapter.window):
        s.observe(*_generated(rt, s.h, W_star, rng))
    info = s.info()["guard"]
    assert info["model"] == "adapted" and info["one_step_model"] == "adapted"
    assert info["one_step"]["adapted"] < info["one_step"]["prior"]
    assert not np.allclose(s.predict(OBS, actions)[0], none.predict(OBS, actions)[0])
    assert s.act(OBS).guard["model"] == "adapted"

    models = []
    for _ in range(40):
        s.observe(*_generated(rt, rt.h0, rt.W0, rng))
        models.append(s.info()["guard"]["model"])
    assert models[-1] == "prior" and models.index("prior") < 30  # as the old errors are forgotten
    assert s.info()["guard"]["one_step"]["prior"] < s.info()["guard"]["one_step"]["adapted"]
    np.testing.assert_array_equal(s.predict(OBS, actions)[0], none.predict(OBS, actions)[0])
    r = s.act(OBS)
    assert r.guard["model"] == "prior" and r.guard["switches"] == 2  # prior -> adapted -> prior
    assert not np.allclose(s.W, rt.W0)  # the head still adapts, ready to be trusted again

    restored = Session(rt, mode, seed=0, guard=GUARD)
    restored.load_state_dict(s.state_dict())
    assert restored.info()["guard"] == s.info()["guard"]


OBS = np.array([-1.0, 0.0, 0.0], np.float32)


def test_modes_without_adaptation_have_no_guard_and_guard_false_plans_with_the_adapted_model(rt):
    from mbmrl.runtime import Session

    assert Session(rt, "none").info()["guard"] is None and Session(rt, "none").act(OBS).guard is None
    rng = np.random.default_rng(1)
    on, off = Session(rt, "recurrent", seed=0), Session(rt, "recurrent", seed=0, guard=False)
    for _ in range(3):
        t = _generated(rt, rt.h0, rt.W0, rng)
        on.observe(*t)
        off.observe(*t)
    assert off.info()["guard"] is None and on.info()["guard"]["model"] == "prior"  # fewer than min_observed
    actions = np.zeros((4, 1), np.float32)
    np.testing.assert_array_equal(on.predict(OBS, actions)[0], Session(rt, "none").predict(OBS, actions)[0])
    assert not np.allclose(off.predict(OBS, actions)[0], on.predict(OBS, actions)[0])  # its adapted belief


@pytest.mark.parametrize("mode", ["bayes", "gradient"])
def test_a_guarded_one_step_prediction_blends_the_adapted_and_the_prior_predictions(rt, mode):
    """A guarded session predicts one step as w x (the unguarded session's prediction) + (1 - w) x (mode none's),
    with w its reported `one_step_weight`; longer predictions stay those of the model it plans with."""
    from mbmrl.runtime import Session

    rng = np.random.default_rng(3)
    W_star = (rt.W0 + 0.3 * rng.standard_normal(rt.W0.shape)).astype(np.float32)
    on, off, none = Session(rt, mode, seed=0), Session(rt, mode, seed=0, guard=False), Session(rt, "none", seed=0)
    for _ in range(12):
        t = _generated(rt, rt.h0, W_star, rng)
        t = (t[0], t[1], t[2] + 0.05 * rng.standard_normal(t[2].shape).astype(np.float32), t[3])  # noisy
        on.observe(*t)
        off.observe(*t)
    w = on.info()["guard"]["one_step_weight"]
    assert 0.0 < w < 1.0
    act1 = np.array([[0.5]], np.float32)
    blended = w * off.predict(OBS, act1)[0] + (1 - w) * none.predict(OBS, act1)[0]
    np.testing.assert_allclose(on.predict(OBS, act1)[0], blended, rtol=1e-6, atol=1e-6)
    actions = np.zeros((4, 1), np.float32)
    planned_with = off if on.info()["guard"]["model"] == "adapted" else none
    np.testing.assert_array_equal(on.predict(OBS, actions)[0], planned_with.predict(OBS, actions)[0])


def test_the_guard_over_http_settings_info_and_every_act_and_step_reply(server):
    from mbmrl.runtime.client import Client

    client = Client(server.url, timeout=30)
    assert client.request("GET", "/v1/model")["default_guard"] == GuardConfig().to_dict()  # what sessions start from
    rng = np.random.default_rng(2)
    with client.new_session(mode="bayes", seed=0, guard={"horizon": 4, "leave": 0.9}) as s:
        info = client.request("GET", f"/v1/sessions/{s.session_id}")
        assert info["guard"]["config"]["horizon"] == 4 and info["guard"]["config"]["leave"] == 0.9
        assert info["guard"]["model"] == "prior" and info["guard"]["scored"] == 0
        transition = None
        for _ in range(6):
            obs = _random_state(rng)
            surprise, result = s.step(obs, transition)
            assert result.guard["model"] in ("adapted", "prior") and result.guard["config"]["horizon"] == 4
            transition = {"obs": obs, "action": result.action, "next_obs": obs, "reward": -1.0}
        assert result.guard["scored"] == 5
        assert s.act(OBS).guard["scored"] == 5
    with client.new_session(mode="bayes", guard=False) as s:
        assert client.request("GET", f"/v1/sessions/{s.session_id}")["guard"] is None
        assert s.act(OBS).guard is None


def test_an_artifact_s_default_guard_sets_its_sessions_guard_and_a_session_s_settings_patch_it(tiny_artifact,
                                                                                               tmp_path):
    """A family that wants its adapted models clearly better before they plan says so in the manifest
    (`default_guard`): every adaptive session starts from those settings, a session's own dict changes only
    the fields it names, `False` still turns the guard off, and impossible settings refuse to load."""
    import json
    import shutil

    from mbmrl.runtime import ArtifactError, Session, load
    from mbmrl.runtime.artifact import DIGEST, sha256_file
    from mbmrl.runtime.guard import manifest_guard

    assert manifest_guard(load(tiny_artifact).manifest) == GuardConfig()  # exported without one: the runtime's defaults
    copy = tmp_path / "a"
    shutil.copytree(tiny_artifact, copy)

    def write(default_guard):
        m = json.loads((copy / "manifest.json").read_text())
        m["default_guard"] = default_guard
        (copy / "manifest.json").write_text(json.dumps(m))
        (copy / DIGEST).write_text(sha256_file(copy / "manifest.json"))

    write({"leave": 0.6, "hysteresis": 0.1})
    rt = load(copy)
    assert manifest_guard(rt.manifest) == GuardConfig(leave=0.6, hysteresis=0.1)
    assert Session(rt, "bayes").info()["guard"]["config"] == GuardConfig(leave=0.6, hysteresis=0.1).to_dict()
    patched = Session(rt, "gradient", guard={"horizon": 4}).info()["guard"]["config"]
    assert patched == GuardConfig(leave=0.6, hysteresis=0.1, horizon=4).to_dict()
    assert Session(rt, "recurrent", guard=False).info()["guard"] is None
    assert Session(rt, "none").info()["guard"] is None

    write({"leave": -1})
    with pytest.raises(ArtifactError, match="default_guard: guard.leave must be in"):
        load(copy)
    write({"leav": 0.6})
    with pytest.raises(ArtifactError, match="unknown fields"):
        load(copy)
