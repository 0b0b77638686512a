"""The planner ceiling: the simulator as a `Dynamics` engine predicts exactly what the env does, and costs it as
the rollout graphs cost predictions."""

import numpy as np
import pytest
from mbmrl.runtime.cost import Cost
from mbmrl.runtime.dynamics import CostTerms
from mbmrl.train.ceiling import SimulatorDynamics
from mbmrl.train.families import get_family


@pytest.mark.parametrize("name, params", [
    ("halfcheetah", {"mass_scale": 0.4, "damping_scale": 1.6}),
    ("cripple_halfcheetah", {"cripple_joint": 4.0}),
    ("ant", {"mass_scale": 0.5, "damping_scale": 1.0}),
])
def test_simulated_rollouts_are_the_envs_own_steps_and_costs(name, params):
    fam = get_family(name)
    env = fam.make_env(params, "default")
    obs, _ = env.reset(seed=0)
    sim = SimulatorDynamics(fam.make_env(params, "default"), hidden_size=4, feature_dim=4, threads=2)
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 10, env.action_space.shape[0])).astype(np.float32)
    cost = Cost.from_dict({**fam.default_cost.to_dict(), "reward_weight": 1.0, "terminal_weight": 2.0,
                           "reward_source": "learned", "q": [1e-3] * len(obs), "r": [0.01] * actions.shape[-1]},
                          len(obs), actions.shape[-1])  # the simulator's "learned" reward is the env's own
    terms = CostTerms.build(cost, 10, 4)
    costs, states = sim.rollout(obs, np.zeros(4), np.zeros((4, 5)), actions, terms)
    assert costs.shape == (3,) and states.shape == (3, 10, len(obs))
    base = env.unwrapped  # replay sequence 1 in the env itself, from the same state (x = y = 0)
    nq = base.model.nq
    base.set_state(np.concatenate([np.zeros(sim.skip), obs[: nq - sim.skip]]), obs[nq - sim.skip:])
    stepped = [env.step(a)[:2] for a in actions[1]]
    true_states = np.array([o for o, _ in stepped])
    np.testing.assert_allclose(states[1], true_states, atol=1e-5)
    dev = true_states - terms.target
    weights = np.r_[np.ones(9), 2.0][:, None]
    expected = (weights * dev * dev * terms.q).sum() + (actions[1] ** 2 * terms.r).sum() - sum(r for _, r in stepped)
    # the ant's reward reads the torso's position, the engine the root joint's: equal to ~1e-3 per step
    assert costs[1] == pytest.approx(expected, rel=1e-4 if name != "ant" else 1e-3)
    # the family's default: its closed-form reward (reward_source 'known'), a linear term on the states
    known = CostTerms.build(Cost.from_dict({**fam.default_cost.to_dict(), "terminal_weight": 2.0}, len(obs),
                                           actions.shape[-1]), 10, 4)
    assert known.reward_weight[0] == 0 and np.count_nonzero(known.linear) == 1
    k_costs, _ = sim.rollout(obs, np.zeros(4), np.zeros((4, 5)), actions, known)
    expected = (weights[:, 0] * (true_states @ known.linear)).sum() + (actions[1] ** 2 * known.r).sum()
    assert k_costs[1] == pytest.approx(expected, rel=1e-4)


def test_only_mujoco_envs_have_a_simulator_to_plan_with():
    with pytest.raises(ValueError, match="MuJoCo"):
        SimulatorDynamics(get_family("pendulum").make_env({"mass": 1.0, "length": 1.0}, "default"), 4, 4)


def test_an_action_scale_drives_the_simulator_with_scaled_actions_and_costs_the_planned_ones():
    """`action_scale` (`tools/planner_ceiling.py --model-gain`): MuJoCo gets the plan times the scale, the control
    cost stays the plan's own."""
    fam = get_family("halfcheetah")
    params = {"mass_scale": 1.0, "damping_scale": 1.0}
    obs, _ = fam.make_env(params, "default").reset(seed=0)
    plain = SimulatorDynamics(fam.make_env(params, "default"), hidden_size=4, feature_dim=4)
    half = SimulatorDynamics(fam.make_env(params, "default"), hidden_size=4, feature_dim=4, action_scale=0.5)
    actions = np.random.default_rng(1).uniform(-1, 1, (2, 8, 6)).astype(np.float32)
    terms = CostTerms.build(Cost.from_dict(fam.default_cost.to_dict(), len(obs), 6), 8, 4)
    c_half, s_half = half.rollout(obs, np.zeros(4), np.zeros((4, 5)), actions, terms)
    c_plain, s_plain = plain.rollout(obs, np.zeros(4), np.zeros((4, 5)), 0.5 * actions, terms)
    np.testing.assert_allclose(s_half, s_plain, atol=1e-6)  # the same motion as half the actions
    ctrl = 0.1 * (actions ** 2).sum((1, 2))  # halfcheetah's control cost, on the planned actions
    np.testing.assert_allclose(c_half - c_plain, ctrl - ctrl / 4, rtol=1e-4, atol=1e-4)
    assert not np.allclose(s_half, plain.rollout(obs, np.zeros(4), np.zeros((4, 5)), actions, terms)[1])
