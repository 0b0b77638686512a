import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mbmrl.runtime.cost import Cost
from mbmrl.train.families import get_family
from mbmrl.train.families.halfcheetah import (
    FORWARD_VELOCITY_INDEX,
    cripple_halfcheetah_family,
    halfcheetah_family,
    make_halfcheetah,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*(Box observation space|different from the unwrapped)")


@pytest.mark.parametrize(
    "params", [{"mass_scale": 1.5, "damping_scale": 0.5}, {"cripple_joint": 4.0}], ids=["scaled", "cripple"]
)
@pytest.mark.parametrize("start", ["default", "cadm"])
def test_check_env(params, start):
    env = make_halfcheetah(params, start)
    check_env(env.unwrapped, skip_render_check=True)
    check_env(env, skip_render_check=True)  # our wrappers too
    assert env.observation_space.shape == (17,) and env.action_space.shape == (6,)


def test_scales_from_defaults_without_shared_state():
    scaled = make_halfcheetah({"mass_scale": 1.5, "damping_scale": 0.5})
    plain = make_halfcheetah({"mass_scale": 1.0, "damping_scale": 1.0})
    m_scaled, m_plain = scaled.unwrapped.model, plain.unwrapped.model
    assert m_scaled is not m_plain
    assert m_plain.body_mass[1] == pytest.approx(6.25020921)  # Gymnasium's torso mass
    np.testing.assert_allclose(m_scaled.body_mass, 1.5 * m_plain.body_mass)
    np.testing.assert_allclose(m_scaled.dof_damping, 0.5 * m_plain.dof_damping)
    np.testing.assert_allclose(m_plain.body_mass, scaled.default_body_mass)
    np.testing.assert_allclose(m_plain.dof_damping, scaled.default_dof_damping)
    scaled.set_scales(0.2, 1.8)  # rescaling starts from the defaults, not from the current values
    np.testing.assert_allclose(m_scaled.body_mass, 0.2 * scaled.default_body_mass)
    np.testing.assert_allclose(m_scaled.dof_damping, 1.8 * scaled.default_dof_damping)


def test_scales_change_dynamics():
    action = np.full(6, 0.8, dtype=np.float32)
    obs = []
    for scale in (0.5, 1.5):
        env = make_halfcheetah({"mass_scale": scale, "damping_scale": scale})
        env.reset(seed=3)
        obs.append(env.step(action)[0])
    assert not np.allclose(obs[0], obs[1])


def test_spec_recreates_the_task():
    env = make_halfcheetah({"mass_scale": 1.5, "damping_scale": 0.5, "cripple_joint": 2.0}, "cadm")
    again = gym.make(env.spec)
    np.testing.assert_allclose(again.unwrapped.model.body_mass, env.unwrapped.model.body_mass)
    np.testing.assert_allclose(again.unwrapped.model.dof_damping, env.unwrapped.model.dof_damping)
    np.testing.assert_array_equal(again.get_wrapper_attr("mask"), env.get_wrapper_attr("mask"))


def test_forward_velocity_is_obs_8():
    env = make_halfcheetah({"mass_scale": 1.0, "damping_scale": 1.0})
    env.reset(seed=0)
    obs = env.step(env.action_space.sample())[0]
    assert obs[FORWARD_VELOCITY_INDEX] == env.unwrapped.data.qvel[0]


@pytest.mark.parametrize("joint", [0, 5])
def test_crippled_joint_has_no_effect(joint):
    a = np.linspace(-0.9, 0.9, 6).astype(np.float32)
    b = a.copy()
    b[joint] = -a[joint] if a[joint] != 0 else 1.0
    results = []
    for action in (a, b):
        env = make_halfcheetah({"cripple_joint": float(joint)})
        env.reset(seed=7)
        results.append(env.step(action)[:2])
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]  # control cost sees the masked action, as in CaDM

    # the same action change does matter when another joint is crippled
    other = []
    for action in (a, b):
        env = make_halfcheetah({"cripple_joint": float((joint + 1) % 6)})
        env.reset(seed=7)
        other.append(env.step(action)[0])
    assert not np.allclose(other[0], other[1])


def test_bad_params_raise():
    with pytest.raises(ValueError, match="cripple_joint"):
        make_halfcheetah({"cripple_joint": 6.0})
    with pytest.raises(ValueError, match="integer"):
        make_halfcheetah({"cripple_joint": 1.5})
    with pytest.raises(ValueError, match="unknown halfcheetah params"):
        make_halfcheetah({"mass": 1.0})
    with pytest.raises(ValueError, match="start"):
        make_halfcheetah({}, start="upright")


def test_halfcheetah_family():
    family = halfcheetah_family()
    assert get_family("halfcheetah").name == "halfcheetah"
    assert family.param_names == ("mass_scale", "damping_scale")
    assert family.episode_steps == 1000
    assert list(family.test_splits) == ["extreme_low", "moderate_low", "moderate_high", "extreme_high"]
    expected = {
        "extreme_low": (0.2, 0.3),
        "moderate_low": (0.4, 0.5),
        "moderate_high": (1.5, 1.6),
        "extreme_high": (1.7, 1.8),
    }
    for split, values in expected.items():
        grid = [{"mass_scale": m, "damping_scale": d} for m in values for d in values]
        assert family.test_tasks(split) == [(split, p) for p in grid]
    assert len(family.test_tasks()) == 16
    train = set(family.train["mass_scale"].values)
    assert all(
        p["mass_scale"] not in train and p["damping_scale"] not in train for _, p in family.test_tasks()
    )
    cost = family.default_cost
    assert len(cost.q) == len(cost.target) == len(family.obs_names) == 17
    assert len(cost.r) == len(family.action_names) == 6
    assert family.obs_names[FORWARD_VELOCITY_INDEX] == "rootx_vel"
    assert cost.reward_source == "known" and cost.reward_weight == 1.0


@pytest.mark.parametrize("family_fn", [halfcheetah_family, cripple_halfcheetah_family])
def test_the_known_reward_is_the_envs_reward(family_fn):
    """The cost's closed-form reward (what the planner maximizes under reward_source 'known') tracks the
    env's own reward along an episode: same control cost, forward velocity instead of the step's displacement."""
    family = family_fn()
    cost = Cost.from_dict(family.default_cost.to_dict(), 17, 6)
    env = family.make_env(family.test_tasks()[0][1], family.eval_start)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    known, actual = [], []
    for _ in range(200):
        a = rng.uniform(-1, 1, 6).astype(np.float32)
        obs, r, *_ = env.step(a)
        known.append(cost.reward.linear @ obs - cost.reward.r @ (a * a))
        actual.append(r)
    env.close()
    known, actual = np.array(known), np.array(actual)
    assert np.corrcoef(known, actual)[0, 1] > 0.9
    assert abs(known.sum() - actual.sum()) < 0.1 * np.abs(actual).sum() + 10


def test_cripple_family():
    family = cripple_halfcheetah_family()
    assert get_family("cripple_halfcheetah").name == "cripple_halfcheetah"
    assert family.param_names == ("cripple_joint",)
    assert family.train["cripple_joint"].values == (0.0, 1.0, 2.0, 3.0)
    assert family.test_tasks() == [
        ("unseen_joint", {"cripple_joint": 4.0}),
        ("unseen_joint", {"cripple_joint": 5.0}),
    ]


def test_making_envs_does_not_print_mujocos_settotalmass_deprecation(capfd):
    """Gymnasium's asset compiles with a deprecation MuJoCo printed once per env made: hundreds of log lines."""
    from mbmrl.train.families import mujoco_log

    make_halfcheetah({"mass_scale": 0.5}).reset(seed=0)
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
    with pytest.warns(RuntimeWarning, match="MuJoCo: something else"):  # any other warning still reaches the user
        mujoco_log._handle("something else")


def test_a_somersaulted_cheetah_observes_the_pitch_it_was_trained_on():
    """Pitch 3pi + x is pitch pi + x (running on its back, what training sees): the same observation, not an angle
    out of every training range (low-mass test cheetahs somersault to +-3pi)."""
    a = np.linspace(-0.5, 0.5, 6).astype(np.float32)
    observed = []
    for pitch in (np.pi + 0.1, 3 * np.pi + 0.1, -np.pi + 0.1):
        env = make_halfcheetah({"mass_scale": 0.2, "damping_scale": 0.2}, start="cadm")
        env.reset(seed=3)
        base = env.unwrapped
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[2] = pitch
        base.set_state(qpos, qvel)
        observed.append(env.step(a)[0])
    for obs in observed:
        assert -np.pi / 2 <= obs[1] < 3 * np.pi / 2
        np.testing.assert_allclose(obs, observed[0], atol=1e-9)


def test_the_family_s_guard_reaches_the_manifest_also_from_runs_saved_before_checkpoints_kept_it():
    """The half-cheetah's guard margin (`default_guard`) is what its artifacts' sessions start from; a run
    trained before checkpoints stored it exports its built-in family's own, a user's family the runtime's
    defaults, and a stored value wins."""
    from mbmrl.train.checkpoint import default_guard
    from mbmrl.train.families import get_family

    assert dict(get_family("halfcheetah").default_guard) == {"leave": 0.5} == default_guard({"name": "halfcheetah"})
    assert default_guard({"name": "cripple_halfcheetah"}) == {"leave": 0.5}
    assert default_guard({"name": "pendulum"}) == {} == default_guard({"name": "my_pkg.families:robot"})
    assert default_guard({"name": "halfcheetah", "default_guard": {}}) == {}


def test_the_mass_family_s_gain_adaptation_reaches_the_manifest_and_the_crippled_one_has_none():
    """The heavy test cheetahs are the trained ones driven by a / mass: `halfcheetah` artifacts' sessions adapt
    an actuator gain by default (also when exported from a run saved before checkpoints stored it); the crippled
    family, whose one dead joint no common gain describes, and a user's family do not."""
    from mbmrl.runtime.gain import GainConfig
    from mbmrl.train.checkpoint import default_gain
    from mbmrl.train.families import get_family

    assert dict(get_family("halfcheetah").default_gain) == {"max_gain": 2.5, "plan_horizon": 10, "plan_above": 1.15} \
        == default_gain({"name": "halfcheetah"})
    # settings the runtime accepts, on the horizons `mbmrl export` writes for it (its own and the gain's)
    GainConfig.from_dict(default_gain({"name": "halfcheetah"}), obs_dim=17, horizons=[15, 30, 10])
    assert default_gain({"name": "cripple_halfcheetah"}) == {} == default_gain({"name": "my_pkg.families:robot"})
    assert default_gain({"name": "halfcheetah", "default_gain": {}}) == {}
