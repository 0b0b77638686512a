"""Model internals that export and the runtime rely on."""

import pytest
import torch
from mbmrl.train import losses as L
from mbmrl.train.model import DynamicsModel, ModelArgs


def test_written_out_gru_step_equals_torch_gru():
    torch.manual_seed(0)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=5, feature_dim=4, mlp_width=8))
    B, T = 4, 6
    obs, act = torch.randn(B, T, 3), torch.randn(B, T, 1)
    nxt, rew = obs + 0.1 * torch.randn(B, T, 3), torch.randn(B, T)
    hs = m.beliefs(obs, act, nxt, rew)  # (B, T, hidden), hs[:, t] folds transitions < t
    assert torch.allclose(hs[:, 0], m.h0.expand(B, -1))
    h = m.h0.expand(B, -1)
    for t in range(T - 1):
        h = m.gru_step(h, obs[:, t], act[:, t], nxt[:, t], rew[:, t, None])
        torch.testing.assert_close(h, hs[:, t + 1], atol=1e-5, rtol=1e-5)


def test_oracle_beliefs_are_the_normalized_parameters():
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, feature_dim=4, mlp_width=8, n_task_params=2))
    m.set_normalization({"param_mean": torch.tensor([1.0, 1.0]), "param_std": torch.tensor([0.5, 0.5])})
    x = torch.zeros(2, 3, 3)
    hs = m.beliefs(x, torch.zeros(2, 3, 1), x, torch.zeros(2, 3), torch.tensor([[1.5, 0.5], [1.0, 1.0]]))
    torch.testing.assert_close(hs[:, 2], torch.tensor([[1.0, -1.0], [0.0, 0.0]]))


def test_losses_are_finite_and_backpropagate():
    torch.manual_seed(0)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=5, feature_dim=6, mlp_width=8))
    b = L.Batch(torch.randn(4, 12, 3), torch.randn(4, 12, 1), torch.randn(4, 12, 3), torch.randn(4, 12),
                torch.zeros(4, 0))
    e = L.encode(m, b)
    total = (L.recurrent_loss(m, e) + L.none_loss(m, b, e) + L.multistep_loss(m, b, e, 3)
             + L.gradient_loss(m, e, 8, 2) + L.bayes_loss(m, e, 8))
    total.backward()
    assert torch.isfinite(total)
    assert m.log_step_size.grad is not None and m.prior_chol.grad is not None and m.h0.grad is not None


def test_the_multistep_loss_trains_the_prior_belief_only_when_asked():
    """`none_weight` > 0 also rolls h0 open loop (mode `none` and the guard's fall-back plan with it); at 0
    only the recurrent beliefs learn the horizon. h0 reaches the loss only through that roll-out here, since
    the recurrent beliefs are detached from it."""
    torch.manual_seed(0)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=5, feature_dim=6, mlp_width=8))
    b = L.Batch(torch.randn(4, 12, 3), torch.randn(4, 12, 1), torch.randn(4, 12, 3), torch.randn(4, 12),
                torch.zeros(4, 0))
    e = L.encode(m, b)
    e = L.Encoded(e.h.detach(), e.phi, e.y, e.phis)
    grads = []
    for w in (0.0, 0.5):
        m.zero_grad()
        torch.manual_seed(1)  # the same start positions
        L.multistep_loss(m, b, e, 3, none_weight=w).backward(retain_graph=True)
        grads.append(None if m.h0.grad is None else m.h0.grad.abs().sum().item())
    assert grads[0] in (None, 0.0) and grads[1] > 0


def test_weight_decay_shrinks_the_networks_weights_and_never_the_head_or_vectors():
    """`--weight-decay`: with a zero gradient, one AdamW step shrinks exactly the GRU and feature-MLP weight
    matrices by lr x decay; W0, the Bayesian prior, biases and h0 stay; 0 is plain Adam."""
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.trainer import optimizer

    m = DynamicsModel(ModelArgs(3, 1, 8, 16, 32))
    assert type(optimizer(m, TrainConfig())) is torch.optim.Adam
    opt = optimizer(m, TrainConfig(weight_decay=0.5, lr=0.1))
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    shrunk = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert shrunk == {"gru.weight_ih_l0", "gru.weight_hh_l0", "fx.weight", "fh.weight", "f2.weight", "f3.weight"}
    assert torch.allclose(m.f2.weight, before["f2.weight"] * (1 - 0.1 * 0.5))
    with pytest.raises(ValueError, match="weight-decay"):
        TrainConfig(weight_decay=-1)
