"""The runtime's numpy head adaptation equals what meta-training differentiates through (torch)."""

import numpy as np
import torch
from mbmrl.runtime.adapt import head_gradient_steps, nig_update, noise_factor, predictive_variance, rls_update
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


def test_online_noise_scale_matches_the_normal_inverse_gamma_posterior():
    """Sequential residual updates (runtime) = the batch NIG posterior (training), and its t-variance."""
    m = _model()
    phi, y = torch.randn(1, 20, 6), torch.randn(1, 20, 4) * 3.0
    W_t, cov_t = L.bayes_posterior(m, phi, y)
    a_t, b_t = L.noise_scale_posterior(m, phi, y, W_t, a0=3.0)
    noise = m.noise_var().detach().numpy().astype(np.float64)
    W = m.W0.detach().numpy().astype(np.float64)
    P = np.linalg.inv(m.prior_precision().detach().numpy().astype(np.float64))
    a, b = 3.0, np.full(4, 3.0)
    for i in range(20):
        p_i, y_i = phi[0, i].numpy().astype(np.float64), y[0, i].numpy().astype(np.float64)
        W, P, a, b = nig_update(W, P, a, b, p_i, y_i, noise)
    assert a == a_t == 13.0
    np.testing.assert_allclose(b, b_t[0].detach().numpy(), rtol=1e-3)
    assert (b / a > 2.0).all()  # targets 3x noisier than the prior's noise: the scale grows
    # the runtime's predictive variance is the Student-t variance the training NLL uses
    x = torch.randn(1, 1, 6)
    _, var_t = L.bayes_predict(m, x, W_t, cov_t)
    t_var = (var_t[0, 0] * (b_t[0] / a_t) * (2 * a_t) / (2 * a_t - 2)).detach().numpy()
    v = predictive_variance(P, x[0].numpy().astype(np.float64), noise, noise_factor(a, b))[0]
    np.testing.assert_allclose(v, t_var, rtol=1e-3)


def test_student_t_nll_matches_torch_distributions():
    err, scale2 = torch.randn(50), torch.rand(50) + 0.1
    ref = -torch.distributions.StudentT(7.0, 0.0, scale2.sqrt()).log_prob(err)
    torch.testing.assert_close(L.student_t_nll(err, scale2, 7.0), ref, rtol=1e-5, atol=1e-5)
