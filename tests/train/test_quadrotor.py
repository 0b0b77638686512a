import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mbmrl.train.families.base import sample_params
from mbmrl.train.families.quadrotor import (
    DT,
    MAX_THRUST,
    G,
    QuadrotorEnv,
    hover_action,
    hover_fraction,
    make_quadrotor,
)
from mbmrl.train.families.quadrotor_family import quadrotor_family, quadrotor_payload_family

CALM = {"payload": 0.3, "thrust_coef": 0.9, "drag": 0.2, "wind_x": 0.0, "wind_y": 0.0}
CALM_SUSPENDED = {**CALM, "cable_length": 0.8}


def exact_env(params: dict, **kwargs) -> QuadrotorEnv:
    """An env that starts exactly at the hover point, level and at rest."""
    env = QuadrotorEnv(params, position_noise=0.0, tilt_noise=0.0, **kwargs)
    env.reset(seed=0)
    return env


def run(env: QuadrotorEnv, action, steps: int) -> np.ndarray:
    """Positions (steps, 3) under a constant action."""
    action = np.asarray(action, dtype=np.float32)
    return np.array([env.step(action)[0][:3] for _ in range(steps)])


@pytest.mark.parametrize("suspended", [False, True])
def test_check_env_passes_without_warnings(suspended):
    env = make_quadrotor(CALM_SUSPENDED if suspended else CALM, suspended=suspended)
    assert isinstance(env, gym.wrappers.TimeLimit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)  # no render modes to check
    assert [str(w.message) for w in caught] == []
    assert env.observation_space.shape == ((21,) if suspended else (15,))
    assert len(env.unwrapped.obs_names) == env.observation_space.shape[0]


@pytest.mark.parametrize("suspended", [False, True])
def test_deterministic_given_seed(suspended):
    params = {**(CALM_SUSPENDED if suspended else CALM), "wind_x": 2.0}
    actions = np.random.default_rng(1).uniform(-0.3, 0.3, size=(50, 4)).astype(np.float32)
    traces = []
    for _ in range(2):
        env = make_quadrotor(params, suspended=suspended)
        obs, _ = env.reset(seed=7)
        traces.append([obs] + [env.step(a)[0] for a in actions])
    np.testing.assert_array_equal(np.array(traces[0]), np.array(traces[1]))
    other, _ = make_quadrotor(params, suspended=suspended).reset(seed=8)
    assert not np.array_equal(other, traces[0][0])


@pytest.mark.parametrize("suspended", [False, True])
def test_hover_thrust_holds_position(suspended):
    env = exact_env(CALM_SUSPENDED if suspended else CALM, suspended=suspended)
    a0 = hover_action(CALM)
    thrust = CALM["thrust_coef"] * (a0 + 1) / 2 * MAX_THRUST
    assert thrust == pytest.approx((1 + CALM["payload"]) * G)
    positions = run(env, [a0, 0, 0, 0], steps=int(1.0 / DT))
    assert np.abs(positions - [0.0, 0.0, 1.0]).max() < 1e-3


def test_free_fall_without_thrust_or_drag():
    env = exact_env({**CALM, "drag": 0.0})
    positions = run(env, [-1, 0, 0, 0], steps=10)
    t = DT * np.arange(1, 11)
    np.testing.assert_allclose(positions[:, 2], 1.0 - 0.5 * G * t**2, atol=1e-6)
    np.testing.assert_allclose(positions[:, :2], 0.0, atol=1e-9)


def test_wind_pushes_drone_downwind():
    env = exact_env({**CALM, "wind_x": 3.0, "wind_y": -2.0})
    positions = run(env, [hover_action(CALM), 0, 0, 0], steps=int(1.0 / DT))
    assert positions[-1, 0] > 0.2 and positions[-1, 1] < -0.1
    assert np.diff(positions[:, 0]).min() > 0.0


def test_weaker_thrust_coef_sinks_under_same_command():
    command = [hover_action(CALM), 0, 0, 0]
    nominal = run(exact_env(CALM), command, steps=25)
    weak = run(exact_env({**CALM, "thrust_coef": 0.8}), command, steps=25)
    assert weak[-1, 2] < nominal[-1, 2] - 0.1


def test_cable_length_preserved_under_random_actions():
    params = {**CALM_SUSPENDED, "wind_x": 2.0, "cable_length": 0.6}
    env = QuadrotorEnv(params, suspended=True)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    a0 = hover_action(params)
    lengths, swing = [], []
    for _ in range(int(2.0 / DT)):
        action = np.clip([a0, 0, 0, 0] + rng.normal(0, [0.3, 0.5, 0.5, 0.5]), -1, 1).astype(np.float32)
        obs, *_ = env.step(action)
        lengths.append(np.linalg.norm(obs[15:18]))
        swing.append(np.linalg.norm(obs[15:17]))
    np.testing.assert_allclose(lengths, 0.6, rtol=0.01)
    assert max(swing) > 0.01  # the payload does swing


def test_swinging_payload_conserves_momentum_and_has_closed_form_period():
    # Level, vertical hover thrust and no drag: no horizontal external force, so the horizontal
    # momentum stays zero, and for small swings a pendulum on a free pivot of mass M has
    # period 2 pi sqrt(M L / ((M + m) g)).
    params = {**CALM_SUSPENDED, "drag": 0.0}
    frame, load, length, angle = 1.0, params["payload"], params["cable_length"], 0.05
    env = exact_env(params, suspended=True)
    env.state[13:16] = length * np.array([np.sin(angle), 0.0, -np.cos(angle)])
    swing, momentum = [], []
    for _ in range(150):
        env.step(np.array([hover_action(params), 0, 0, 0], dtype=np.float32))
        s = env.state
        swing.append(s[13])
        momentum.append(frame * s[3:5] + load * (s[3:5] + s[16:18]))
    assert np.abs(momentum).max() < 1e-9
    swing, t = np.array(swing), DT * np.arange(1, 151)
    i = np.flatnonzero(np.sign(swing[:-1]) != np.sign(swing[1:]))
    crossings = t[i] - swing[i] * DT / (swing[i + 1] - swing[i])
    period = 2 * np.pi * np.sqrt(frame * length / ((frame + load) * G))
    np.testing.assert_allclose(2 * np.diff(crossings), period, rtol=5e-3)


@pytest.mark.parametrize("family", [quadrotor_family(), quadrotor_payload_family()], ids=lambda f: f.name)
def test_every_test_task_is_controllable(family):
    tasks = family.test_tasks()
    assert {name for name, _ in tasks} == {"moderate", "extreme"}
    for split in family.test_splits:
        assert len(family.test_tasks(split)) <= 8
    for _, params in tasks:
        total_mass = 1.0 + params["payload"]
        assert total_mass * G <= 0.85 * params["thrust_coef"] * MAX_THRUST
        assert hover_fraction(params) <= 0.85  # also counting the wind's drag
        env = family.make_env(params, family.eval_start)
        assert env.observation_space.shape == (len(family.obs_names),)
    # Train tasks at the worst corner (heaviest, weakest, windiest) keep a wider margin.
    worst = {k: (d.low if k == "thrust_coef" else d.high) for k, d in family.train.items()}
    assert hover_fraction(worst) <= 0.8


@pytest.mark.parametrize("family", [quadrotor_family(), quadrotor_payload_family()], ids=lambda f: f.name)
def test_family_cost_matches_obs_layout(family):
    obs_dim = len(family.obs_names)
    cost = family.default_cost
    assert len(cost.target) == len(cost.q) == obs_dim and len(cost.r) == len(family.action_names) == 4
    env = family.make_env(sample_params(family.train, np.random.default_rng(0)), family.eval_start)
    np.testing.assert_allclose(env.unwrapped.reference_obs(0, 1)[0, :15], cost.target[:15])
    assert family.obs_names == env.unwrapped.obs_names


@pytest.mark.parametrize("suspended", [False, True])
def test_reference_obs_and_figure_eight(suspended):
    env = QuadrotorEnv(CALM_SUSPENDED if suspended else CALM, task="figure8", suspended=suspended)
    for t in (0.0, 0.7, 2.5):
        expected = [1.25 * np.sin(t), 0.0, 1.0 + 0.75 * np.sin(2 * t)]
        np.testing.assert_allclose(env.reference(t), expected)
    target = env.reference_obs(step=10, horizon=15)
    assert target.shape == (15, 21 if suspended else 15) and target.dtype == np.float32
    for i in (0, 14):
        np.testing.assert_allclose(target[i, :3], env.reference((10 + 1 + i) * DT), rtol=1e-6)
    np.testing.assert_array_equal(target[:, 6:12], np.tile([1, 0, 0, 0, 1, 0], (15, 1)))
    # the target velocity is the reference's own (feed-forward): a central difference of its positions
    for i in (0, 7):
        t = (10 + 1 + i) * DT
        slope = (env.reference(t + 1e-4) - env.reference(t - 1e-4)) / 2e-4
        np.testing.assert_allclose(target[i, 3:6], slope, atol=1e-4)
    assert np.abs(target[:, 3:6]).max() > 1.0  # it moves at ~1.3-1.9 m/s
    env.reset(seed=0)
    obs, reward, *_, info = env.step(np.zeros(4, dtype=np.float32))
    assert info["position_error"] == pytest.approx(np.linalg.norm(obs[:3] - env.reference(DT)), abs=1e-6)
    assert reward <= -info["position_error"]


def test_leaving_the_safety_box_terminates():
    env = make_quadrotor({**CALM, "wind_x": 3.0})
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, reward, terminated, truncated, _ = env.step(np.array([-1, 0, 0, 0], dtype=np.float32))
        steps += 1
    assert terminated and not truncated and steps < 100
    assert reward < -1.0


def test_bad_params_and_start_are_rejected():
    with pytest.raises(ValueError, match="cable_length"):
        make_quadrotor(CALM, suspended=True)
    with pytest.raises(ValueError, match="unknown"):
        make_quadrotor({**CALM, "mass": 1.0})
    with pytest.raises(ValueError, match="start"):
        make_quadrotor(CALM, "cadm")
    with pytest.raises(ValueError, match="task"):
        make_quadrotor(CALM, task="loop")
