"""The runtime's numpy head adaptation equals what meta-training differentiates through (torch)."""

import numpy as np
import torch
from mbmrl.runtime.adapt import head_gradient_steps, rls_update
from mbmrl.train import losses as L
from mbmrl.train.model import DynamicsModel, ModelArgs


def _model():
    torch.manual_seed(0)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, mlp_width=8))
    with torch.no_grad():
        m.W0.normal_()
        m.prior_chol.copy_(torch.randn(6, 6) * 0.5 + torch.eye(6))
    return m


def test_gradient_steps_match_torch_autograd():
    m = _model()
    phi, y = torch.randn(1, 12, 6), torch.randn(1, 12, 4)
    W_loss = L.adapt_gradient(m, phi, y, steps=2)[0]
    # the same two steps with autograd on L(W) = mean_i ||phi_i W - y_i||^2
    W = m.W0.detach().clone().requires_grad_(True)
    for _ in range(2):
        loss = ((phi[0] @ W - y[0]) ** 2).sum(-1).mean()
        (g,) = torch.autograd.grad(loss, W)
        W = (W - m.step_size().detach() * g).detach().requires_grad_(True)
    np.testing.assert_allclose(W_loss.detach().numpy(), W.detach().numpy(), rtol=1e-5, atol=1e-6)
    W_np = head_gradient_steps(m.W0.detach().numpy(), phi[0].numpy(), y[0].numpy(),
                               m.step_size().detach().numpy(), 2)
    np.testing.assert_allclose(W_np, W.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_rls_in_numpy_matches_the_batch_posterior_trained_in_torch():
    m = _model()
    phi, y = torch.randn(1, 20, 6, dtype=torch.float32), torch.randn(1, 20, 4)
    W_t, cov_t = L.bayes_posterior(m, phi, y)
    W = m.W0.detach().numpy().astype(np.float64)
    P = np.linalg.inv(m.prior_precision().detach().numpy().astype(np.float64))
    for i in range(20):
        W, P = rls_update(W, P, phi[0, i].numpy().astype(np.float64), y[0, i].numpy().astype(np.float64))
    np.testing.assert_allclose(W, W_t[0].detach().numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(P, cov_t[0].detach().numpy(), rtol=1e-3, atol=1e-4)
