"""The pendulum family: Gymnasium's own env, CaDM's parameter sets and start distribution."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mbmrl.train.families import get_family


@pytest.fixture(scope="module")
def fam():
    return get_family("pendulum")


def test_check_env_passes_for_both_starts(fam):
    for start in ("default", "cadm"):
        check_env(fam.make_env({"mass": 1.0, "length": 1.0}, start).unwrapped, skip_render_check=True)


def test_physics_are_set_through_m_and_l(fam):
    env = fam.make_env({"mass": 0.3, "length": 1.7}, "default")
    assert env.unwrapped.m == 0.3 and env.unwrapped.l == 1.7
    # one Euler step from rest at theta = pi/2 with torque u: thdot' = (3g/(2l) sin th + 3/(m l^2) u) dt
    env.reset(seed=0)
    env.unwrapped.state = np.array([np.pi / 2, 0.0])
    obs, *_ = env.step(np.array([1.0], np.float32))
    g, dt, m, length = 10.0, 0.05, 0.3, 1.7
    expected = (3 * g / (2 * length) * 1.0 + 3.0 / (m * length**2) * 1.0) * dt
    assert obs[2] == pytest.approx(expected, rel=1e-5)


def test_cadm_start_hangs_down(fam):
    env = fam.make_env({"mass": 1.0, "length": 1.0}, "cadm")
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        theta = np.arctan2(obs[1], obs[0]) % (2 * np.pi)
        assert 7 * np.pi / 8 - 1e-6 <= theta <= 9 * np.pi / 8 + 1e-6 and abs(obs[2]) <= 0.2


def test_splits_follow_cadm_and_are_disjoint_from_training(fam):
    tasks = fam.test_tasks()
    assert len(tasks) == 16 and {s for s, _ in tasks} == {"moderate", "extreme"}
    train_values = set(fam.train["mass"].values)
    assert all(p["mass"] not in train_values or p["length"] not in train_values for _, p in tasks)
    assert {(p["mass"], p["length"]) for s, p in tasks if s == "extreme"} >= {(0.2, 1.6), (1.8, 0.4)}
    assert train_values == {round(0.75 + 0.05 * i, 2) for i in range(11)}


def test_unknown_family_and_start_give_clear_errors(fam):
    with pytest.raises(ValueError, match="unknown task family"):
        get_family("pendulumm")
    with pytest.raises(ValueError, match="start"):
        fam.make_env({"mass": 1.0, "length": 1.0}, "sideways")
