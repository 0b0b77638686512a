"""Every runtime mode (numpy) equals its torch twin in meta-training, on the same context: one loop over modes."""

import numpy as np
import pytest
import torch
from mbmrl.runtime.artifact import Manifest, ModeSpec, Normalization
from mbmrl.runtime.modes import make_mode
from mbmrl.train import losses as L
from mbmrl.train.checkpoint import Checkpoint, params_for
from mbmrl.train.model import DynamicsModel, ModelArgs

WINDOW, STEPS, A0 = 8, 2, 3.0


def _model():
    torch.manual_seed(0)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, mlp_width=8))
    with torch.no_grad():
        m.W0.normal_()
        m.prior_chol.copy_(torch.randn(6, 6) * 0.5 + torch.eye(6))
    return m


def _modes(m):
    """The numpy mode objects, built from the torch model's parameters as export builds them."""
    ckpt = Checkpoint.of(m, family="t", param_names=[], action_low=[-1.0], action_high=[1.0],
                         config={"gaussian_nll": False}, family_info={})
    z = [0.0] * 3
    manifest = Manifest(family="t", obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, output_dim=4,
                        action_low=(-1.0,), action_high=(1.0,), default_mode="recurrent",
                        normalization=Normalization.from_dict({"obs_mean": z, "obs_std": z, "delta_mean": z,
                                                               "delta_std": z, "reward_mean": 0, "reward_std": 1}),
                        modes={"none": ModeSpec(), "recurrent": ModeSpec(),
                               "gradient": ModeSpec(steps=STEPS, window=WINDOW),
                               "bayes": ModeSpec(window=WINDOW, noise_prior=A0)},
                        default_cost={}, default_planner={})
    params = params_for(m, ckpt)
    return {name: make_mode(name, manifest, params) for name in manifest.modes}


def _torch_twin(m, name, phi, y):
    """(W, predictive variance at probe or None) from meta-training's batch formulas over the last WINDOW."""
    phi, y = phi[:, -WINDOW:], y[:, -WINDOW:]
    if name in ("none", "recurrent"):
        return m.W0, None
    if name == "gradient":
        return L.gradient_head(m, phi, y, STEPS)[0], None
    W, cov = L.bayes_posterior(m, phi, y)
    a, b = L.noise_scale_posterior(m, phi, y, W, A0)
    return W[0], (cov[0], b[0] / a * (2 * a) / (2 * a - 2))


@pytest.mark.parametrize("n", [5, 20])  # inside the window, and well past it
def test_every_mode_matches_its_torch_twin(n):
    m = _model()
    phi, y = torch.randn(1, n, 6), torch.randn(1, n, 4) * 3.0
    probe = torch.randn(1, 1, 6)
    for name, mode in _modes(m).items():
        state = mode.init()
        for i in range(n):
            state = mode.fold(state, phi[0, i].numpy(), y[0, i].numpy())
        W_t, var_t = _torch_twin(m, name, phi, y)
        np.testing.assert_allclose(mode.head(state), W_t.detach().numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
        var = mode.variance(state, probe[0].numpy())
        if var_t is None:
            assert var is None
        else:  # the runtime's predictive variance is the Student-t variance the training NLL uses
            cov, factor = var_t
            _, v = L.bayes_predict(m, probe, torch.zeros(6, 4), cov[None])
            np.testing.assert_allclose(var[0], (v[0, 0] * factor).detach().numpy(), rtol=1e-3, err_msg=name)


def test_gradient_steps_match_torch_autograd():
    m = _model()
    phi, y = torch.randn(1, 12, 6), torch.randn(1, 12, 4)
    W_loss = L.gradient_head(m, phi, y, steps=2)[0]
    W = m.W0.detach().clone().requires_grad_(True)
    for _ in range(2):  # the same two steps with autograd on L(W) = mean_i ||phi_i W - y_i||^2
        loss = ((phi[0] @ W - y[0]) ** 2).sum(-1).mean()
        (g,) = torch.autograd.grad(loss, W)
        W = (W - m.step_size().detach() * g).detach().requires_grad_(True)
    np.testing.assert_allclose(W_loss.detach().numpy(), W.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_student_t_nll_matches_torch_distributions():
    err, scale2 = torch.randn(50), torch.rand(50) + 0.1
    ref = -torch.distributions.StudentT(7.0, 0.0, scale2.sqrt()).log_prob(err)
    torch.testing.assert_close(L.student_t_nll(err, scale2, 7.0), ref, rtol=1e-5, atol=1e-5)
