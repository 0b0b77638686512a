"""The optional Gaussian head: trained by NLL, exported, and its variance served by `predict`."""

import numpy as np
import pytest
import torch
from mbmrl.train import losses as L
from mbmrl.train.model import DynamicsModel, ModelArgs


def test_gaussian_nll_is_the_squared_error_at_unit_variance_and_trains_the_variance():
    torch.manual_seed(0)
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, mlp_width=8))
    b = L.Batch(torch.randn(2, 5, 3), torch.randn(2, 5, 1), torch.randn(2, 5, 3), torch.randn(2, 5), torch.zeros(2, 0))
    e = L.encode(m, b)
    # V = 0 -> log-variance 0 -> NLL = 0.5 * squared error
    assert L.recurrent_loss(m, e, gaussian=True).item() == pytest.approx(0.5 * L.recurrent_loss(m, e).item())
    L.recurrent_loss(m, e, gaussian=True).backward()
    assert m.V.grad is not None and m.V.grad.abs().sum() > 0


@pytest.mark.slow
def test_an_artifact_with_a_gaussian_head_predicts_a_variance(tmp_path):
    from mbmrl.export.config import ExportConfig
    from mbmrl.export.onnx_export import export_run
    from mbmrl.runtime import Session, load
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.trainer import train

    run = train(TrainConfig(out=str(tmp_path / "run"), n_tasks=4, episodes_per_task=1, iters=20, batch_size=8,
                            seq_len=32, hidden_size=8, feature_dim=8, mlp_width=16, gaussian_nll=True,
                            oracle=False, progress=False, tensorboard=False))
    rt = load(export_run(ExportConfig(run=str(run), out=str(tmp_path / "a"), horizons=(15,))))
    assert rt.manifest.gaussian_head is True and rt.params.V is not None
    pred, var = Session(rt, "recurrent").predict(np.array([-1.0, 0.0, 0.0]), np.zeros((3, 1)))
    assert var.shape == (3, 3) and (var > 0).all() and np.isfinite(var).all()
