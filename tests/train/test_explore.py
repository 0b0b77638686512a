"""Model-based exploration: MPC with the model in training collects on-policy segments of new tasks."""

import dataclasses
import json

import numpy as np
import pytest
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import PROTOCOLS, TrainConfig, with_protocol
from mbmrl.train.explore import collect_mpc
from mbmrl.train.families import get_family


def test_mpc_rounds_collect_bounded_reproducible_segments_of_new_tasks(tiny_run):
    ckpt = Checkpoint.load(tiny_run / "model.pt")
    model = ckpt.model().train()
    facts = ckpt.facts()
    fam = get_family("pendulum")

    def run(workers=1):
        return collect_mpc(model, facts, fam, n_tasks=2, episodes_per_task=1, seg_len=50, noise=0.1,
                           rng=np.random.default_rng(0), first_task_id=100, progress=False, workers=workers)

    segs, returns = run()
    assert segs.obs.shape == (2 * 4, 50, 3) and set(segs.task_ids) == {100, 101}
    # each task's episode return (the run's learning curve): 200 steps, all of them in the 4 segments
    np.testing.assert_allclose(returns, [segs.rewards[segs.task_ids == t].sum() for t in (100, 101)], rtol=1e-5)
    assert np.abs(segs.actions).max() <= 2.0  # Pendulum's torque bound
    np.testing.assert_array_equal(segs.next_obs[:, :-1], segs.obs[:, 1:])  # one episode per task: contiguous
    np.testing.assert_array_equal(run()[0].actions, segs.actions)  # seeded: the same data again
    two, two_returns = run(workers=2)  # tasks flown at once on threads: the same data, in the same order
    np.testing.assert_array_equal(two.actions, segs.actions)
    np.testing.assert_array_equal(two.task_ids, segs.task_ids)
    np.testing.assert_array_equal(two_returns, returns)
    # the first observation of every task comes from the family's evaluation start (hanging down)
    first = segs.obs[segs.task_ids == 100][0, 0]
    assert first[0] < -0.8
    assert model.training  # collection plans in eval mode and hands the model back in training mode
    # a family's deployment guard (`default_guard`, chosen on test physics) does not change what a schedule
    # collects: exploring sessions keep the runtime's default guard
    eager = {**facts, "family_info": {**facts["family_info"], "default_guard": {"leave": 100.0, "plan_after": 0}}}
    same = collect_mpc(model, eager, fam, n_tasks=2, episodes_per_task=1, seg_len=50, noise=0.1,
                       rng=np.random.default_rng(0), first_task_id=100, progress=False)[0]
    np.testing.assert_array_equal(same.actions, segs.actions)


def test_exploring_on_the_exported_model_flies_as_the_torch_model_does(tiny_run, tmp_path):
    """`--mpc-engine onnx` exports the model in training each round: the same plans, to float tolerance."""
    ckpt = Checkpoint.load(tiny_run / "model.pt")
    model = ckpt.model().train()
    facts = ckpt.facts()
    runs = {engine: collect_mpc(model, facts, get_family("pendulum"), n_tasks=1, episodes_per_task=1, seg_len=50,
                                noise=0.1, rng=np.random.default_rng(0), first_task_id=0, progress=False,
                                engine=engine, workdir=tmp_path / "explore")[0]
            for engine in ("torch", "onnx")}
    assert (tmp_path / "explore" / "artifact" / "manifest.json").exists()
    # chaotic closed loop: compare the first steps, before float differences can grow
    np.testing.assert_allclose(runs["onnx"].actions[0, :20], runs["torch"].actions[0, :20], atol=1e-3)


def test_the_cadm_protocol_fills_only_the_fields_left_at_their_defaults():
    cfg = with_protocol(TrainConfig(protocol="cadm", mpc_rounds=2))
    assert (cfg.n_tasks, cfg.episodes_per_task, cfg.mpc_tasks, cfg.mpc_engine) == (10, 1, 10, "onnx")
    assert cfg.mpc_rounds == 2  # given on the command line: kept
    assert 10 * (1 + PROTOCOLS["cadm"]["mpc_rounds"]) * 1000 == 200_000  # CaDM's MuJoCo budget in steps
    with pytest.raises(ValueError, match="--protocol must be one of"):
        TrainConfig(protocol="pets")


def test_the_cadm_schedule_runs_on_mujoco_at_a_tiny_budget(tmp_path):
    """`mbmrl train --family halfcheetah --protocol cadm` with its rounds cut to one: random then MPC-collected
    1000-step episodes, the exploring model exported and planning with the family's reward and CEM 200 x 30."""
    from mbmrl.runtime.artifact import ArtifactError
    from mbmrl.runtime.loader import load
    from mbmrl.runtime.session import Session
    from mbmrl.train.data import Segments
    from mbmrl.train.trainer import train

    cfg = TrainConfig(family="halfcheetah", protocol="cadm", out=str(tmp_path / "run"), n_tasks=2, mpc_rounds=1,
                      mpc_tasks=1, iters=10, mpc_iters=5, hidden_size=8, feature_dim=8, mlp_width=32, batch_size=8,
                      oracle=False, progress=False, tensorboard=False)
    run = train(cfg)
    segs = Segments.load(run / "data.npz")
    assert len(set(segs.task_ids)) == 3 and segs.obs.shape[:2] == (3 * (1000 // 64), 64)  # 3 whole episodes
    rt = load(run / "explore" / "artifact")
    # its planning horizon only (the exploring sessions run without gain adaptation): a session asking for the
    # family's gain, which plans 10 steps ahead on heavy plants, is told to re-export
    assert rt.default_planner.method == "cem" and rt.default_planner.horizon == 30 and rt.horizons == [30]
    with pytest.raises(ArtifactError, match="re-export"):
        Session(rt, "none")
    assert rt.default_cost.reward_source == "known"
    saved = json.loads((run / "config.json").read_text())
    assert saved["protocol"] == "cadm" and saved["mpc_engine"] == "onnx" and saved["episodes_per_task"] == 1


def test_renormalize_recomputes_the_statistics_from_all_data_after_each_round(tmp_path):
    """`--renormalize`: after an MPC round the model normalizes with the statistics of everything collected
    (CaDM's fit does), not of the random round only."""
    from mbmrl.train.data import Segments
    from mbmrl.train.trainer import normalization_stats, train

    cfg = TrainConfig(family="pendulum", out=str(tmp_path / "run"), n_tasks=2, episodes_per_task=1, seq_len=50,
                      mpc_rounds=1, mpc_tasks=1, iters=5, mpc_iters=5, hidden_size=8, feature_dim=8, mlp_width=32,
                      batch_size=8, oracle=False, progress=False, tensorboard=False, renormalize=True)
    run = train(cfg)
    model = Checkpoint.load(run / "model.pt").model()
    segs = Segments.load(run / "data.npz")
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    every = normalization_stats(segs, low, high)
    first = segs.task_ids < 2  # the random round's two tasks
    random_round = normalization_stats(Segments(segs.obs[first], segs.actions[first], segs.next_obs[first],
                                                segs.rewards[first], segs.params[first], segs.task_ids[first],
                                                segs.param_names), low, high)
    for key in ("obs_std", "delta_std", "reward_mean", "reward_std"):
        np.testing.assert_allclose(getattr(model, key).numpy(), every[key], rtol=1e-5)
    assert not np.allclose(every["delta_std"], random_round["delta_std"])  # MPC data moved them
    # the learning curve: the round's episode return, and where it was reached
    curve = json.loads((run / "metrics.json").read_text())["mpc_returns"]
    assert [c["round"] for c in curve] == [1] and curve[0]["env_steps"] == segs.obs.shape[0] * 50
    assert curve[0]["mean"] == pytest.approx(segs.rewards[segs.task_ids == 2].sum(), rel=1e-5)
    assert (run / "learning_curve.png").stat().st_size > 0


def test_objective_weights_weigh_the_outputs_the_planning_cost_reads():
    from mbmrl.train.trainer import objective_weights

    cheetah = get_family("halfcheetah")
    w = objective_weights(cheetah.default_cost, 4.0)  # the known reward reads next_obs' forward velocity
    reads = cheetah.obs_names.index("rootx_vel")
    assert w.shape == (len(cheetah.obs_names) + 1,) and w.mean() == pytest.approx(1.0)
    assert w[reads] == pytest.approx(5 * w[0]) and np.allclose(np.delete(w, reads), w[0])
    assert objective_weights(cheetah.default_cost, 0.0) is None
    pendulum = get_family("pendulum").default_cost  # quadratic cost on the state plus the learned reward
    w = objective_weights(pendulum, 1.0)
    assert np.array_equal(w > w.min(), np.append(np.asarray(pendulum.q) != 0, pendulum.reward_weight != 0))


def test_correlated_exploration_noise_holds_its_pushes_at_the_same_spread():
    """`--mpc-noise-corr`: the perturbation on the plan is an AR(1) process of white noise's spread; 0 is white."""
    from types import SimpleNamespace

    from mbmrl.train.explore import mpc_episode

    fam = get_family("pendulum")
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    still = SimpleNamespace(rt=SimpleNamespace(action_low=low, action_high=high),  # plans 0: the actions are the noise
                            act=lambda obs: SimpleNamespace(action=np.zeros(1, np.float32)), observe=None)

    def pushes(corr):
        env = fam.make_env({"mass": 1.0, "length": 1.0}, fam.eval_start)
        ep = mpc_episode(still, env, 200, 0.1, np.random.default_rng(3), seed=0, corr=corr)  # type: ignore[arg-type]
        env.close()
        return ep.actions[:, 0] / 0.2  # in units of the noise's spread (0.1 of the half-range 2)

    white, held = pushes(0.0), pushes(0.9)
    lag1 = lambda x: float(np.corrcoef(x[:-1], x[1:])[0, 1])  # noqa: E731
    assert abs(lag1(white)) < 0.2 and lag1(held) > 0.75
    assert 0.7 < white.std() < 1.3 and 0.5 < held.std() < 1.5  # the same spread (200 correlated steps: wider band)
    np.testing.assert_allclose(white, np.random.default_rng(3).standard_normal(200), rtol=1e-5)  # corr 0: the old draws
    with pytest.raises(ValueError, match="mpc-noise-corr"):
        TrainConfig(mpc_noise_corr=1.0)


def test_a_run_cost_override_is_what_the_exploring_sessions_and_the_artifact_plan_with(tmp_path):
    """`mbmrl train --cost`: the family's planning cost with some fields replaced (a half-cheetah's upright term)
    is the exploring artifact's and the run's default cost; a malformed override fails before any collection."""
    from mbmrl.runtime.loader import load
    from mbmrl.train.trainer import train

    q = [0.0] * 3
    q[1] = 0.7
    cfg = TrainConfig(family="pendulum", out=str(tmp_path / "run"), n_tasks=2, episodes_per_task=1, seq_len=50,
                      mpc_rounds=1, mpc_tasks=1, iters=5, mpc_iters=5, hidden_size=8, feature_dim=8, mlp_width=32,
                      batch_size=8, oracle=False, progress=False, tensorboard=False, mpc_engine="onnx",
                      cost=json.dumps({"q": q}))
    run = train(cfg)
    family = get_family("pendulum").default_cost
    explore = load(run / "explore" / "artifact").default_cost
    assert explore.q.tolist() == pytest.approx(q) and explore.r.tolist() == pytest.approx(list(family.r))
    assert Checkpoint.load(run / "model.pt").family_info["default_cost"]["q"] == pytest.approx(q)
    with pytest.raises(ValueError, match="JSON object"):
        TrainConfig(cost="[1, 2]")
    with pytest.raises(ValueError, match="cost.q must have 3 entries"):
        train(dataclasses.replace(cfg, out=str(tmp_path / "bad"), cost='{"q": [1.0]}'))
    assert not (tmp_path / "bad").exists()


def test_a_family_cost_merges_checked_overrides():
    cheetah = get_family("halfcheetah").default_cost
    q = [0.0] * 17
    q[1] = 1.0
    upright = cheetah.merged({"q": q})
    assert upright.q == tuple(q) and upright.reward_linear == cheetah.reward_linear
    assert upright.reward_source == "known" and upright.reward_r == cheetah.reward_r
    with pytest.raises(ValueError, match="keys from"):
        cheetah.merged({"linear": [0.0] * 17})
    with pytest.raises(ValueError, match="uncertainty_weight must be >= 0"):
        cheetah.merged({"uncertainty_weight": -1.0})


def test_a_context_free_run_trains_only_the_prior_path_and_explores_without_the_belief(tiny_run, monkeypatch):
    """--recurrent-weight 0 with no gradient/bayes loss (CaDM's vanilla DM): the loss leaves the belief encoder
    untouched; --mpc-mode none flies exploring sessions of that mode, which never read the belief, so the encoder's
    weights do not change what they collect."""
    import torch
    from mbmrl.train import explore
    from mbmrl.train import losses as L
    from mbmrl.train.data import Segments
    from mbmrl.train.trainer import loss_parts, to_batch

    ckpt = Checkpoint.load(tiny_run / "model.pt")
    model = ckpt.model().train()
    segs = Segments.load(tiny_run / "data.npz")
    b = to_batch(segs, np.arange(4), torch.device("cpu"))
    vanilla = TrainConfig(recurrent_weight=0.0, mpc_mode="none", gradient_weight=0.0, bayes_weight=0.0,
                          rollout_steps=3)
    for cfg, encoder_moves in ((vanilla, False), (dataclasses.replace(vanilla, recurrent_weight=1.0), True)):
        model.zero_grad()
        sum(loss_parts(model, b, L.encode(model, b), cfg).values()).backward()
        gru = [p.grad for p in model.gru.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in gru) == encoder_moves
        assert model.W0.grad.abs().sum() > 0 and model.h0.grad.abs().sum() > 0  # the prior path trains
    model.zero_grad()

    flown_modes = []

    class Spy(explore.Session):  # the real session, recording the mode it was asked to fly
        def __init__(self, rt, mode, **kw):
            flown_modes.append(mode)
            super().__init__(rt, mode, **kw)

    monkeypatch.setattr(explore, "Session", Spy)

    def fly(m, mode):
        return collect_mpc(m, ckpt.facts(), get_family("pendulum"), n_tasks=1, episodes_per_task=1, seg_len=50,
                           noise=0.1, rng=np.random.default_rng(0), first_task_id=0, progress=False, mode=mode)[0]

    other = ckpt.model().train()
    with torch.no_grad():
        for p in other.gru.parameters():
            p.add_(0.5)
    np.testing.assert_array_equal(fly(model, "none").actions, fly(other, "none").actions)
    assert flown_modes == ["none", "none"]
    with pytest.raises(ValueError, match="--mpc-mode none"):
        TrainConfig(recurrent_weight=0.0, mpc_rounds=1)
    with pytest.raises(ValueError, match="--mpc-mode"):
        TrainConfig(mpc_mode="oracle")
