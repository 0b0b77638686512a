"""Actuator-gain adaptation: estimating how much weaker the plant's actuators are than the model's, planning
model-unit actions within the plant's bounds, and sessions that keep the gain through snapshots and HTTP."""

from __future__ import annotations

import numpy as np
import pytest
from mbmrl.runtime.gain import GainConfig, fold_gain, gain_settings, init_gain, kept_errors

OBS_DIM, ACT_DIM = 2, 1
STD = np.ones(OBS_DIM, np.float32)
H0 = np.zeros(1, np.float32)
W0 = np.zeros((OBS_DIM + ACT_DIM, OBS_DIM + 1), np.float32)  # delta = -0.1 x + u on every obs entry
W0[:OBS_DIM, :OBS_DIM] = -0.1 * np.eye(OBS_DIM)
W0[OBS_DIM, :OBS_DIM] = 1.0


def features(obs, action, h):  # (B, O), (B, A), (B, 1) -> (B, O + A): a linear model; h is unused
    return np.concatenate([obs, action], axis=1).astype(np.float32)


def next_state(obs, out):  # (B, O), (B, P) -> (B, O)
    return (obs + out[:, :OBS_DIM]).astype(np.float32)


def plant(x, a, true_gain):
    """The model's system with actuators 1 / true_gain as strong."""
    return (0.9 * x + a / true_gain).astype(np.float32)


def fly(cfg, st, true_gain, steps, rng, x=None):
    x = np.zeros(OBS_DIM, np.float32) if x is None else x
    for _ in range(steps):
        a = rng.uniform(-1, 1, ACT_DIM).astype(np.float32)
        nxt = plant(x, a, true_gain)
        st = fold_gain(cfg, st, x, a, nxt, features, next_state, H0, W0, STD)
        x = nxt
    return st, x


def nearest(cfg, true_gain):
    """The grid gain whose action scale 1/g is nearest the plant's: the noise-free least-squares optimum."""
    g = cfg.gains()
    return float(g[np.argmin(np.abs(1 / g - 1 / true_gain))])


@pytest.mark.parametrize("horizon", [1, 5])
@pytest.mark.parametrize("true_gain", [1.0, 1.8, 0.5])
def test_the_estimate_finds_a_weaker_plant_s_gain_and_stays_at_1_for_the_model_s_own_or_a_stronger_one(horizon,
                                                                                                  true_gain):
    cfg = GainConfig(horizon=horizon, window=16, every=2)
    st, _ = fly(cfg, init_gain(cfg, OBS_DIM, ACT_DIM), true_gain, 40, np.random.default_rng(0))
    assert float(st.gain) == pytest.approx(nearest(cfg, max(true_gain, 1.0)))
    assert int(st.n) == 16 and np.isfinite(st.scores).all()
    if true_gain == 1.8:  # the grid's errors fall toward the plant's gain and rise past it
        assert np.argmin(st.scores) not in (0, cfg.grid - 1) and st.scores[0] > 10 * st.scores.min()


def test_no_estimate_before_a_whole_sequence_and_sequences_never_cross_a_gap():
    cfg = GainConfig(horizon=5, window=16, every=1)
    rng = np.random.default_rng(1)
    st, x = fly(cfg, init_gain(cfg, OBS_DIM, ACT_DIM), 2.0, 4, rng)
    assert float(st.gain) == 1.0 and np.isnan(st.scores).all()  # four transitions: no 5-step sequence yet
    st, x = fly(cfg, st, 2.0, 4, rng, x)
    assert float(st.gain) > 1.0
    # a reset: the next transition starts elsewhere; no kept sequence may run across it
    st, _ = fly(cfg, st, 2.0, 6, rng, x + 5.0)
    gap = len(st.linked) - 6  # the row of the first transition after the reset
    assert not st.linked[gap] and st.linked[gap + 1:].all()
    scored = np.isfinite(st.errors).all(1)  # the rows where a scored sequence ends
    H = cfg.horizon
    first = len(st.linked) - int(st.n)  # the oldest kept transition's row
    assert not scored[:first + H - 1].any() and scored[first + H - 1:gap].all()
    assert not scored[gap:gap + H - 1].any() and scored[gap + H - 1:].all()


@pytest.mark.parametrize("horizon", [1, 3])
def test_each_sequence_scored_once_gives_the_errors_of_scoring_the_whole_window_again(horizon):
    """A transition's sequence is scored when it arrives; the estimate must equal re-scoring every kept sequence."""
    cfg = GainConfig(horizon=horizon, window=12, every=5)
    rng = np.random.default_rng(2)
    st, x = fly(cfg, init_gain(cfg, OBS_DIM, ACT_DIM), 1.7, 9, rng)
    st, _ = fly(cfg, st, 1.7, 20, rng, x + 3.0)  # a gap, then the window slides past it
    first = len(st.linked) - int(st.n)
    starts = [r for r in range(first, len(st.linked) - horizon + 1) if st.linked[r + 1:r + horizon].all()]
    expected = []
    for g in cfg.gains():
        per_sequence = []
        for r in starts:
            xs, e = st.obs[r], 0.0
            for j in range(horizon):
                xs = next_state(xs[None], features(xs[None], st.actions[r + j][None] / g, H0[None]) @ W0)[0]
                e += float(((xs - st.next_obs[r + j]) / STD) ** 2 @ np.ones(OBS_DIM)) / OBS_DIM
            per_sequence.append(e)
        expected.append(np.mean(per_sequence))
    np.testing.assert_allclose(kept_errors(cfg, st), expected, rtol=1e-5, atol=1e-9)


def test_settings_are_validated_and_a_session_s_setting_patches_the_artifact_s():
    base = GainConfig(max_gain=2.0)
    assert gain_settings(None, None, OBS_DIM) is None  # no default: off
    assert gain_settings(None, base, OBS_DIM) == base and gain_settings(False, base, OBS_DIM) is None
    assert gain_settings(True, None, OBS_DIM) == GainConfig() and gain_settings(True, base, OBS_DIM) == base
    assert gain_settings({"every": 2}, base, OBS_DIM) == GainConfig(max_gain=2.0, every=2)
    assert GainConfig.from_dict(GainConfig(dims=(1,)).to_dict()) == GainConfig(dims=(1,))
    for bad, field in [({"max_gain": 1.0}, "max_gain"), ({"grid": 1}, "grid"), ({"window": 1}, "window"),
                       ({"forget": 1.0}, "forget"), ({"dims": [2]}, "dims"), ({"gian": 2}, "unknown")]:
        with pytest.raises(ValueError, match=field):
            gain_settings(bad, None, OBS_DIM)


# ------------------------------------------------------------------------------------------ sessions
def _plant_episode(rt, true_gain: float, steps: int, rng) -> list[dict]:
    """Transitions of a plant that is the artifact's prior model driven by action / true_gain."""
    from mbmrl.runtime.session import Session

    prior = Session(rt, "none", gain=False)
    obs, out = np.array([1.0, 0.0, 0.0], np.float32), []
    for _ in range(steps):
        a = rng.uniform(rt.action_low, rt.action_high).astype(np.float32)
        nxt = prior.predict(obs, (a / np.float32(true_gain))[None])[0][0]
        out.append({"obs": obs, "action": a, "next_obs": nxt})
        obs = nxt
    return out


def test_a_session_estimates_the_gain_plans_model_units_within_the_plant_s_bounds_and_restores_it(tiny_artifact):
    from mbmrl.runtime.loader import load
    from mbmrl.runtime.session import Session

    rt = load(tiny_artifact)
    cfg = GainConfig(every=1, max_gain=2.5)
    true_gain = float(cfg.gains()[9])  # a grid value: the plant is the model at exactly this gain
    s = Session(rt, "none", seed=0, gain=cfg.to_dict())
    assert s.g == 1.0 and s.info()["gain"]["gain"] == 1.0
    s.observe_many(_plant_episode(rt, true_gain, 40, np.random.default_rng(0)))
    assert s.g == pytest.approx(true_gain) and s.info()["gain"] == {"gain": pytest.approx(true_gain), "kept": 32,
                                                                    "settings": cfg.to_dict()}
    twin = Session(rt, "none", seed=0, gain=cfg.to_dict())
    twin.load_state_dict(s.state_dict())
    assert twin.g == s.g
    obs = np.array([0.5, 0.5, 0.2], np.float32)
    res = s.act(obs)
    np.testing.assert_array_equal(res.plan, twin.act(obs).plan)  # restored exactly: the same plan
    # the model planned u within the plant's bounds / g; the plant gets g u, within its own bounds
    assert (np.abs(s.plan) <= rt.action_high / s.g + 1e-6).all()
    np.testing.assert_allclose(res.plan[1:], np.clip(s.plan[:-1] * s.g, rt.action_low, rt.action_high), atol=1e-6)
    np.testing.assert_allclose(res.action, res.plan[0])
    # predictions take plant actions: the same as the prior model's on action / g
    a = res.plan[:3]
    np.testing.assert_allclose(s.predict(obs, a)[0], Session(rt, "none", gain=False).predict(obs, a / s.g)[0],
                               atol=1e-5)
    # a snapshot from before the per-sequence errors: the estimate stays, the transitions that follow are scored
    older = Session(rt, "none", seed=0, gain=cfg.to_dict())
    older.load_state_dict({k: v for k, v in twin.state_dict().items() if k != "gain.errors"})
    assert older.g == s.g and np.isnan(older.gain.errors).all()
    older.observe_many(_plant_episode(rt, true_gain, 3, np.random.default_rng(1)))
    assert older.g == pytest.approx(true_gain) and np.isfinite(older.gain.errors[-3:]).all()
    off = Session(rt, "none", seed=0)  # this artifact declares no default_gain: off
    assert off.gain is None and off.info()["gain"] is None and off.g == 1.0


def test_a_plant_beyond_plan_above_plans_over_the_gain_s_shorter_horizon(tiny_artifact):
    from mbmrl.runtime.loader import load
    from mbmrl.runtime.session import Session

    rt = load(tiny_artifact)  # horizons 15 and 30
    cfg = {"every": 1, "plan_horizon": 15, "plan_above": 1.3}
    s = Session(rt, "none", seed=0, planner={"horizon": 30}, gain=cfg)
    obs = np.array([0.5, 0.5, 0.2], np.float32)
    assert s.act(obs).plan.shape[0] == 30  # gain 1: the planner's horizon
    s.observe_many(_plant_episode(rt, 2.0, 20, np.random.default_rng(4)))
    assert s.g > 1.3
    warm = s.plan.copy()
    res = s.act(obs)
    assert res.plan.shape[0] == 15 and s.plan.shape[0] == 15  # out of range: the shorter horizon
    assert s.act(obs, planner={"horizon": 30}).plan.shape[0] == 30  # a request naming a horizon keeps it
    # the warm start over the shorter horizon is the longer plan's first steps: with no samples to move it,
    # the plan is exactly that
    still = Session(rt, "none", seed=0, planner={"horizon": 30, "samples": 1, "noise_scale": 1e-9}, gain=cfg)
    still.observe_many(_plant_episode(rt, 2.0, 20, np.random.default_rng(4)))
    still.plan = warm
    np.testing.assert_allclose(still.act(obs).plan, np.clip(warm[:15] * still.g, rt.action_low, rt.action_high),
                               atol=1e-5)
    short = Session(rt, "none", seed=0, planner={"horizon": 15}, gain={**cfg, "plan_horizon": 30})
    short.observe_many(_plant_episode(rt, 2.0, 20, np.random.default_rng(4)))
    assert short.act(obs).plan.shape[0] == 15  # never longer than the planner's own
    with pytest.raises(ValueError, match="plan_horizon"):
        Session(rt, "none", gain={"plan_horizon": 20})  # not exported
    with pytest.raises(ValueError, match="plan_above"):
        Session(rt, "none", gain={"plan_above": 0.5})


def test_export_adds_the_family_s_gain_horizon():
    from mbmrl.export.onnx_export import export_horizons

    assert export_horizons((15, 30), {}) == (15, 30)
    assert export_horizons((15, 30), {"max_gain": 2.5, "plan_horizon": 10}) == (15, 30, 10)
    assert export_horizons((15, 30), {"plan_horizon": 15}) == (15, 30)


def test_a_bad_transition_leaves_the_gain_as_it_was(tiny_artifact):
    from mbmrl.runtime.loader import load
    from mbmrl.runtime.session import Session

    rt = load(tiny_artifact)
    s = Session(rt, "recurrent", seed=0, gain={"every": 1})
    s.observe_many(_plant_episode(rt, 2.0, 12, np.random.default_rng(1)))
    before = s.state_dict()
    bad = {"obs": [1.0, 0.0, 0.0], "action": [0.5], "next_obs": [1.0, 0.0, float("nan")]}
    with pytest.raises(ValueError):
        s.observe_many([*_plant_episode(rt, 2.0, 3, np.random.default_rng(2)), bad])
    after = s.state_dict()
    for k in (k for k in before if k.startswith("gain.")):
        np.testing.assert_array_equal(before[k], after[k])


def test_gain_over_http_settings_info_and_errors(server, tiny_artifact):
    from mbmrl.runtime.client import ApiError, Client
    from mbmrl.runtime.loader import load

    client = Client(server.url, timeout=30)
    assert client.request("GET", "/v1/model")["default_gain"] == {}  # this artifact: off unless asked
    episode = _plant_episode(load(tiny_artifact), 2.0, 20, np.random.default_rng(3))
    with client.new_session(mode="none", seed=0, gain={"every": 1, "max_gain": 2.5}) as s:
        info = client.request("GET", f"/v1/sessions/{s.session_id}")
        assert info["gain"]["gain"] == 1.0 and info["gain"]["settings"]["max_gain"] == 2.5
        s.observe_many(episode)
        info = client.request("GET", f"/v1/sessions/{s.session_id}")
        assert info["gain"]["kept"] == 20 and info["gain"]["gain"] > 1.5
        assert np.abs(s.act(episode[-1]["next_obs"]).action).max() <= 2.0 + 1e-6
    with client.new_session(mode="none", gain=False) as s:
        assert client.request("GET", f"/v1/sessions/{s.session_id}")["gain"] is None
    for bad in ({"max_gain": 0.5}, {"gian": 2.0}, "yes", {"plan_horizon": 20}, {"plan_above": 0.5}):
        with pytest.raises(ApiError) as e:
            client.new_session(mode="none", gain=bad)
        assert e.value.status == 422 and "gain" in str(e.value)


def test_a_restarted_server_restores_a_session_s_gain_settings_and_estimate(tiny_artifact, tmp_path):
    import signal

    from mbmrl.runtime.loader import load
    from test_server import Server

    episode = [{k: np.asarray(v).tolist() for k, v in t.items()}
               for t in _plant_episode(load(tiny_artifact), 2.0, 16, np.random.default_rng(4))]
    a = Server.start(tiny_artifact, "--state-dir", str(tmp_path))
    try:
        sid = a.new_session(mode="none", seed=0, gain={"every": 1, "max_gain": 3.0})
        assert a.call("POST", f"/v1/sessions/{sid}/observe", {"transitions": episode})[0] == 200
        before = a.call("GET", f"/v1/sessions/{sid}")[1]["gain"]
    finally:
        a.stop(signal.SIGKILL)  # a crash: the gain must already be on disk
    b = Server.start(tiny_artifact, "--state-dir", str(tmp_path))
    try:
        after = b.call("GET", f"/v1/sessions/{sid}")[1]["gain"]
        assert after == before and after["gain"] > 1.5 and after["settings"]["max_gain"] == 3.0
    finally:
        b.stop()
