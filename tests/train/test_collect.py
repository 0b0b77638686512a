"""Parallel data collection with Gymnasium vector envs: no transition crosses a reset, segments keep their task."""

import gymnasium as gym
import numpy as np
import pytest
from mbmrl.train.data import Segments, collect_random_vector, random_actions
from mbmrl.train.families import CostSpec, TaskFamily, Uniform, get_family

EPISODE_STEPS = 12


class CounterEnv(gym.Env):
    """obs = (steps since reset, task parameter k); ends at random times, so sub-envs reset out of step."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, k: float):
        self.k = k

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([self.t, self.k], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = bool(self.np_random.random() < 0.15)
        return np.array([self.t, self.k], np.float32), float(self.k * action[0]), terminated, False, {}


def counter_family() -> TaskFamily:
    return TaskFamily(name="counter", make_env=lambda p, start: CounterEnv(p["k"]), train={"k": Uniform(0.0, 1.0)},
                      test_splits={}, episode_steps=EPISODE_STEPS, obs_names=("t", "k"), action_names=("a",),
                      default_cost=CostSpec((0.0, 0.0), (1.0, 1.0), (0.0,)))


@pytest.mark.parametrize("asynchronous", [False, True])
def test_vector_segments_stay_within_one_episode_of_one_task(asynchronous):
    segs = collect_random_vector(counter_family(), n_tasks=5, episodes_per_task=6, seg_len=3,
                                 rng=np.random.default_rng(0), num_envs=3, progress=False, asynchronous=asynchronous)
    S = len(segs)
    assert S > 0 and segs.obs.shape == (S, 3, 2) and segs.next_obs.shape == (S, 3, 2)
    assert segs.actions.shape == (S, 3, 1) and segs.rewards.shape == (S, 3) and segs.params.shape == (S, 1)
    assert set(segs.task_ids) == set(range(5))
    # no transition crosses a reset: the step counter always advances by one. Segments cut from inside
    # an episode are contiguous; one made of joined episode tails jumps at most once per joined tail
    np.testing.assert_array_equal(segs.next_obs[..., 0], segs.obs[..., 0] + 1)
    jumps = (segs.next_obs[:, :-1] != segs.obs[:, 1:]).any(-1).sum(1)  # (S,)
    assert (jumps == 0).mean() > 0.5 and jumps.max() <= 2
    assert segs.next_obs[..., 0].max() <= EPISODE_STEPS  # episodes stop at the family's length
    # every transition came from the env of its segment's task
    np.testing.assert_array_equal(segs.obs[..., 1], np.broadcast_to(segs.params, (S, 3)))
    np.testing.assert_allclose(segs.rewards, segs.params * segs.actions[..., 0], rtol=1e-6)
    for tid in np.unique(segs.task_ids):
        assert len(np.unique(segs.params[segs.task_ids == tid])) == 1


def test_vector_pendulum_segments_follow_their_own_physics():
    fam = get_family("pendulum")
    segs = collect_random_vector(fam, n_tasks=3, episodes_per_task=2, seg_len=50, rng=np.random.default_rng(1),
                                 num_envs=2, progress=False, asynchronous=False)
    assert segs.obs.shape == (3 * 2 * 4, 50, 3) and segs.params.shape == (24, 2)
    np.testing.assert_array_equal(segs.next_obs[:, :-1], segs.obs[:, 1:])
    for s in range(0, 24, 5):  # replay transitions in a fresh env built from the segment's parameters
        env = fam.make_env(dict(zip(fam.param_names, segs.params[s].tolist(), strict=True)), "default")
        env.reset(seed=0)
        for t in range(0, 50, 7):
            c, sn, thdot = segs.obs[s, t]
            env.unwrapped.state = np.array([np.arctan2(sn, c), thdot], np.float64)
            nxt, r, *_ = env.step(segs.actions[s, t])
            np.testing.assert_allclose(nxt, segs.next_obs[s, t], atol=1e-4)
            assert r == pytest.approx(segs.rewards[s, t], abs=1e-4)


def test_tasks_whose_episodes_end_early_still_fill_long_segments():
    """Episodes shorter than seg_len (a falling cart-pole) are joined per task instead of dropped."""
    segs = collect_random_vector(counter_family(), n_tasks=4, episodes_per_task=10, seg_len=20,
                                 rng=np.random.default_rng(0), num_envs=2, progress=False, asynchronous=False)
    assert len(segs) > 0 and segs.obs.shape[1] == 20  # longer than any episode (<= 12 steps)
    np.testing.assert_array_equal(segs.next_obs[..., 0], segs.obs[..., 0] + 1)
    assert (segs.obs[:, 1:, 0] == 0).any(axis=1).all()  # every segment spans at least one reset ...
    np.testing.assert_array_equal(segs.obs[..., 1], np.broadcast_to(segs.params, segs.obs.shape[:2]))  # ... of one task


def test_a_wrapped_angles_jump_is_not_trained_as_dynamics():
    """A transition across the wrap of a periodic obs dim keeps its true delta (the half-cheetah's pitch)."""
    obs = np.array([[[0.0, 4.70], [0.0, -1.55]]], np.float32)  # (S=1, L=2, O=2): pitch 4.70 -> wrapped -1.55
    nxt = np.array([[[0.0, -1.55], [0.0, -1.50]]], np.float32)
    segs = Segments(obs, np.zeros((1, 2, 1), np.float32), nxt, np.zeros((1, 2), np.float32),
                    np.zeros((1, 0), np.float32), np.zeros(1, int), ())
    fixed = segs.continuous({1: 2 * np.pi})
    np.testing.assert_allclose(fixed.next_obs[0, :, 1] - obs[0, :, 1], [-1.55 + 2 * np.pi - 4.70, 0.05], atol=1e-5)
    np.testing.assert_array_equal(fixed.next_obs[..., 0], nxt[..., 0])  # other dims untouched
    assert segs.continuous({}) is segs


def test_uniform_random_policy_never_flies_the_smooth_walk():
    """'uniform' is CaDM's random round (i.i.d. actions in every episode); 'mixed' flies a smooth random walk
    in about half of them (lag-1 autocorrelation near 0.9), and an unknown policy is refused."""
    rng = np.random.default_rng(0)
    low, high = np.full(3, -1.0, np.float32), np.full(3, 1.0, np.float32)

    def lag1(a):  # mean over action dims of the lag-1 autocorrelation of one episode's actions
        return np.mean([np.corrcoef(a[:-1, j], a[1:, j])[0, 1] for j in range(a.shape[1])])

    uniform = [lag1(random_actions(rng, low, high, 400, "uniform")) for _ in range(20)]
    mixed = [lag1(random_actions(rng, low, high, 400, "mixed")) for _ in range(20)]
    assert max(abs(c) for c in uniform) < 0.2
    assert sum(c > 0.7 for c in mixed) >= 4
    with pytest.raises(ValueError, match="uniform"):
        random_actions(rng, low, high, 10, "ou")


def test_vector_collection_uses_the_uniform_policy():
    def lag1(policy):  # lag-1 autocorrelation of the collected actions, within segments
        segs = collect_random_vector(counter_family(), n_tasks=4, episodes_per_task=30, seg_len=4,
                                     rng=np.random.default_rng(3), num_envs=2, asynchronous=False, policy=policy)
        a = segs.actions[..., 0]  # (S, L)
        return np.corrcoef(a[:, :-1].ravel(), a[:, 1:].ravel())[0, 1]

    assert abs(lag1("uniform")) < 0.15 < lag1("mixed")
