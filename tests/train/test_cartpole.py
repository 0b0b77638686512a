import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mbmrl.train.families import get_family
from mbmrl.train.families.cartpole import ParamCartPoleEnv, cartpole_family, make_cartpole


def expected_next_state(state, force, length, masspole=0.1, masscart=1.0):
    """Gymnasium CartPole's Euler step, written out by hand (tau = 0.02, g = 9.8)."""
    x, x_dot, theta, theta_dot = state
    total = masspole + masscart
    pml = masspole * length
    temp = (force + pml * theta_dot**2 * math.sin(theta)) / total
    thetaacc = (9.8 * math.sin(theta) - math.cos(theta) * temp) / (
        length * (4.0 / 3.0 - masspole * math.cos(theta) ** 2 / total)
    )
    xacc = temp - pml * thetaacc * math.cos(theta) / total
    tau = 0.02
    return np.array(
        [x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot, theta_dot + tau * thetaacc]
    )


def step_from(env, state, action):
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    obs, reward, terminated, truncated, _ = env.step(np.array([action], dtype=np.float32))
    return obs, reward, terminated


@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value is")  # Gymnasium's own
@pytest.mark.parametrize("mode", ["continuous", "bang_bang"])
def test_check_env(mode):
    env = make_cartpole({"force_mag": 7.0, "length": 0.45}, action_mode=mode)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (4,) and env.action_space.shape == (1,)


def test_params_change_physics_in_closed_form():
    state = (0.1, -0.2, 0.05, 0.3)
    for force_mag, length in [(5.0, 0.4), (18.0, 0.85), (2.0, 0.15)]:
        env = make_cartpole({"force_mag": force_mag, "length": length})
        base = env.unwrapped
        assert base.total_mass == pytest.approx(1.1)
        assert base.polemass_length == pytest.approx(0.1 * length)
        obs, reward, terminated = step_from(env, state, 0.5)
        expected = expected_next_state(state, 0.5 * force_mag, length)
        np.testing.assert_allclose(obs, expected.astype(np.float32), rtol=1e-6)
        assert reward == 1.0 and not terminated


def test_parameters_matter():
    state = (0.0, 0.0, 0.05, 0.0)
    a, _, _ = step_from(make_cartpole({"force_mag": 5.0, "length": 0.4}), state, 1.0)
    b, _, _ = step_from(make_cartpole({"force_mag": 15.0, "length": 0.6}), state, 1.0)
    assert b[1] > a[1]  # a stronger push accelerates the cart more
    assert not np.allclose(a[3], b[3])


def test_bang_bang_maps_sign():
    state = (0.0, 0.0, 0.0, 0.0)
    env = make_cartpole({"force_mag": 12.0, "length": 0.5}, action_mode="bang_bang")
    for action, force in [(0.3, 12.0), (1.0, 12.0), (-0.01, -12.0), (-1.0, -12.0)]:
        obs, _, _ = step_from(env, state, action)
        np.testing.assert_allclose(obs, expected_next_state(state, force, 0.5).astype(np.float32), rtol=1e-6)
    assert ParamCartPoleEnv(12.0, 0.5).force(np.array([0.25])) == pytest.approx(3.0)
    assert ParamCartPoleEnv(12.0, 0.5).force(np.array([3.0])) == pytest.approx(12.0)  # clipped


def test_terminates_like_gymnasium():
    env = make_cartpole({"force_mag": 10.0, "length": 0.5})
    _, reward, terminated = step_from(env, (2.39, 1.0, 0.0, 0.0), 0.0)
    assert terminated and reward == 1.0
    _, _, terminated = step_from(env, (0.0, 0.0, 0.2, 1.0), 0.0)
    assert terminated
    assert env._max_episode_steps == 200


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="action_mode"):
        make_cartpole({"force_mag": 5.0, "length": 0.4}, action_mode="discrete")
    with pytest.raises(ValueError, match="start"):
        make_cartpole({"force_mag": 5.0, "length": 0.4}, start="cadm")


def test_family_grids():
    family = cartpole_family()
    assert get_family("cartpole").name == "cartpole"
    assert family.param_names == ("force_mag", "length")
    assert family.train["force_mag"].values == tuple(float(f) for f in range(5, 16))
    assert family.train["length"].values == (0.4, 0.45, 0.5, 0.55, 0.6)
    assert list(family.test_splits) == ["extreme_low", "moderate_low", "moderate_high", "extreme_high"]
    for split in family.test_splits:
        assert len(family.test_tasks(split)) == 4
    tasks = family.test_tasks()
    assert len(tasks) == 16
    assert ("extreme_low", {"force_mag": 2.0, "length": 0.15}) in tasks
    assert ("extreme_high", {"force_mag": 18.0, "length": 0.85}) in tasks
    train_forces, train_lengths = set(family.train["force_mag"].values), set(family.train["length"].values)
    for _, p in tasks:
        assert p["force_mag"] not in train_forces and p["length"] not in train_lengths
    assert len(family.default_cost.q) == len(family.obs_names) == 4
    assert len(family.default_cost.r) == len(family.action_names) == 1
    assert family.episode_steps == 200


def test_bang_bang_family_is_cadms_actuation():
    fam = get_family("cartpole_bang_bang")
    assert fam.name == "cartpole_bang_bang" and fam.test_splits.keys() == cartpole_family().test_splits.keys()
    env = fam.make_env({"force_mag": 10.0, "length": 0.5}, "default")
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    assert env.unwrapped.force(np.array([0.01])) == 10.0 and env.unwrapped.force(np.array([-0.3])) == -10.0
