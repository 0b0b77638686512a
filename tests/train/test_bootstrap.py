"""`--bootstrap`: each ensemble member fits its own resample of the training segments (PETS's members)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mbmrl.train import losses as L
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import TrainConfig
from mbmrl.train.model import DynamicsModel, ModelArgs
from mbmrl.train.trainer import bootstrap_weights, loss_parts, train


def test_each_member_draws_its_own_resample_of_the_training_segments():
    rng = np.random.default_rng(0)
    train_idx = np.arange(2, 402)  # segments 0, 1 and 402.. are validation: never weighed
    w = bootstrap_weights(420, train_idx, 3, rng)
    assert w.shape == (3, 420)
    assert np.all(w[:, :2] == 0) and np.all(w[:, 402:] == 0)
    assert np.all(w == np.round(w)) and np.all(w.sum(1) == len(train_idx))  # counts of a resample of n from n
    assert 0.30 < np.mean(w[:, train_idx] == 0) < 0.44  # about 1/e of the segments left out of each resample
    assert not np.array_equal(w[0], w[1]) and not np.array_equal(w[1], w[2])
    # a segment listed r times (recorded data, --data-repeat) is drawn r times as often by the batches:
    # its weight is its count over r, so every segment still weighs 1 in expectation
    repeated = np.concatenate([np.arange(10), np.tile([10], 5)])
    w = bootstrap_weights(11, repeated, 4000, np.random.default_rng(1))
    assert abs(w[:, 10].mean() - 1.0) < 0.05 and abs(w[:, :10].mean() - 1.0) < 0.05
    assert np.all(w[:, 10] * 5 == np.round(w[:, 10] * 5))


def _model_and_batch(seed: int = 0) -> tuple[DynamicsModel, L.Batch]:
    torch.manual_seed(seed)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=9, mlp_width=8, ensemble=2))
    with torch.no_grad():
        m.W0.normal_()  # a zero head (its initial value) passes no gradient to the features
    B, T = 6, 12
    b = L.Batch(torch.randn(B, T, 3), torch.randn(B, T, 1), torch.randn(B, T, 3), torch.randn(B, T), torch.zeros(B, 0))
    return m, b


def _grads(m: DynamicsModel, b: L.Batch, mw: torch.Tensor | None, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    m.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the losses' random context sizes and rollout starts
    sum(loss_parts(m, b, L.encode(m, b, mw), cfg).values()).backward()
    return {k: torch.zeros_like(p) if p.grad is None else p.grad.clone() for k, p in m.named_parameters()}


def test_a_member_learns_only_from_the_segments_of_its_resample():
    """Member 1's own layers get no gradient from segments its resample left out, member 0's do; weights of 1
    everywhere are the plain ensemble's losses exactly."""
    m, b = _model_and_batch()
    cfg = TrainConfig(ensemble=2, bootstrap=True, rollout_steps=3, gradient_weight=0, bayes_weight=0)
    out = _grads(m, b, torch.tensor([[1.0] * 6, [0.0] * 6]), cfg)
    member1 = [k for k in out if k.startswith("members.0.")]
    assert member1 and all(torch.all(out[k] == 0) for k in member1)
    assert torch.any(out["fx.weight"] != 0) and torch.any(out["W0"] != 0)
    # half the segments left out for member 1: its gradient is that of the other half alone
    half = torch.tensor([[1.0] * 6, [0.0] * 3 + [2.0] * 3])
    g_half = _grads(m, b, half, cfg)
    g_kept = _grads(m, L.Batch(*(x[3:] for x in (b.obs, b.actions, b.next_obs, b.rewards, b.params))),
                    torch.tensor([[1.0] * 3, [1.0] * 3]), cfg)
    for k in member1:
        torch.testing.assert_close(g_half[k], g_kept[k])
    every = TrainConfig(ensemble=2, bootstrap=True, rollout_steps=3)  # the gradient and bayes parts too
    ones, plain = _grads(m, b, torch.ones(2, 6), every), _grads(m, b, None, every)
    assert all(torch.equal(ones[k], plain[k]) for k in plain)


def test_bootstrap_needs_an_ensemble():
    with pytest.raises(ValueError, match="--bootstrap .* --ensemble K >= 2"):
        TrainConfig(bootstrap=True)


def test_a_bootstrapped_run_reproduces_from_its_seed_and_differs_from_the_plain_ensemble(tmp_path):
    def run(name: str, **kw) -> dict[str, torch.Tensor]:
        cfg = TrainConfig(out=str(tmp_path / name), n_tasks=6, episodes_per_task=1, iters=6, batch_size=8,
                          seq_len=32, hidden_size=8, feature_dim=9, mlp_width=16, ensemble=2, oracle=False,
                          progress=False, tensorboard=False, **kw)
        return Checkpoint.load(train(cfg) / "model.pt").state_dict

    a, again, plain = run("a", bootstrap=True), run("again", bootstrap=True), run("plain")
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert any(not torch.equal(a[k], plain[k]) for k in a)
