"""The Ant family: CaDM's leg masses, reward, episode length and test ranges on Gymnasium's Ant-v5."""

import numpy as np
import pytest
from mbmrl.train.families.ant import FORWARD_VELOCITY_INDEX, OBS_NAMES, ant_family, make_ant


def test_front_legs_get_the_mass_scale_and_back_legs_its_inverse():
    plain, scaled = make_ant({"mass_scale": 1.0}), make_ant({"mass_scale": 0.5, "damping_scale": 2.0})
    m0, m1 = plain.unwrapped.model, scaled.unwrapped.model
    np.testing.assert_allclose(m1.body_mass[:2], m0.body_mass[:2])  # world and torso keep theirs
    np.testing.assert_allclose(m1.body_mass[2:8], 0.5 * m0.body_mass[2:8])
    np.testing.assert_allclose(m1.body_mass[8:14], 2.0 * m0.body_mass[8:14])
    np.testing.assert_allclose(m1.dof_damping[8:14], 0.5 * m0.dof_damping[8:14])
    with pytest.raises(ValueError, match="unknown ant params"):
        make_ant({"mass": 1.0})


def test_cadms_reward_and_observation_and_no_termination():
    env = make_ant({"mass_scale": 0.9})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (len(OBS_NAMES),) == (27,)
    rng = np.random.default_rng(0)
    steps = 0
    for _ in range(1000):
        a = rng.uniform(-1, 1, 8).astype(np.float32)
        x_before = env.unwrapped.data.body("torso").xpos[0]
        obs, reward, terminated, truncated, info = env.step(a)
        velocity = (env.unwrapped.data.body("torso").xpos[0] - x_before) / env.unwrapped.dt  # CaDM's reward_run
        assert reward == pytest.approx(velocity - 0.005 * float(a @ a) + 0.05, abs=1e-6)
        assert obs[FORWARD_VELOCITY_INDEX] == pytest.approx(env.unwrapped.data.qvel[0], abs=1e-6)
        assert not terminated
        steps += 1
    assert truncated and steps == 1000


def test_cadms_train_and_test_ranges():
    fam = ant_family()
    assert fam.train["mass_scale"].values == (0.85, 0.9, 0.95, 1.0)
    tasks = fam.test_tasks()
    assert {p["mass_scale"] for s, p in tasks if s == "moderate"} == {0.4, 0.45, 0.5, 0.55, 0.6}
    assert {p["mass_scale"] for s, p in tasks if s == "extreme"} == {0.2, 0.25, 0.3, 0.35, 0.4}
    assert {p["damping_scale"] for _, p in tasks} == {1.0} and fam.episode_steps == 1000
