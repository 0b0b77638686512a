"""Ensembles whose members own their heads (`mbmrl train --ensemble K --member-heads`): each member owns a block
of the features, so its predictions read only its own rows of the one (D, P) head the runtime adapts, as
PETS's independent members; exported, parity-checked and served like every other ensemble."""

import numpy as np
import pytest
import torch
from mbmrl.export.config import ExportConfig
from mbmrl.export.onnx_export import export_checkpoint, export_run
from mbmrl.runtime import CostTerms, load
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import TrainConfig
from mbmrl.train.model import DynamicsModel, ModelArgs
from mbmrl.train.torch_dynamics import torch_runtime
from mbmrl.train.trainer import train

K, D = 3, 16  # each member owns (16 - 1) / 3 = 5 features and the shared bias row
OBS = np.array([0.5, 0.8, -1.0], np.float32)


@pytest.fixture(scope="module")
def heads_artifact(tmp_path_factory):
    run = tmp_path_factory.mktemp("heads_run")
    cfg = TrainConfig(out=str(run), n_tasks=8, episodes_per_task=1, iters=40, batch_size=16, seq_len=48,
                      hidden_size=8, feature_dim=D, mlp_width=32, window=32, ensemble=K, member_heads=True,
                      oracle=False, rollout_steps=3, progress=False, tensorboard=False)
    train(cfg)
    return export_run(ExportConfig(run=str(run), out=str(tmp_path_factory.mktemp("heads") / "artifact"),
                                   horizons=(15,)))


def _stepped(model, W, actions, k):
    """Member k's open-loop states, stepped one at a time in torch with the head W: (N, H, O)."""
    with torch.no_grad():
        x, hp, states = torch.as_tensor(OBS)[None].expand(len(actions), -1), model.member(k).fh(model.h0[None]), []
        for t in range(actions.shape[1]):
            x = model.step(x, torch.as_tensor(actions[:, t]), hp, torch.as_tensor(W), k)[0]
            states.append(x)
    return torch.stack(states, 1).numpy()


def test_each_member_reads_only_its_own_rows_of_the_head(heads_artifact):
    model = Checkpoint.load(heads_artifact / "model.pt").model()
    assert model.args.member_heads and model.W0.shape[0] == D
    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(5, 3)).astype(np.float32), rng.uniform(-2, 2, (5, 1)).astype(np.float32)
    with torch.no_grad():
        phis = model.member_features(torch.as_tensor(obs), torch.as_tensor(act), model.h0.expand(5, -1)).numpy()
    for k in range(K):  # (5, D): member k's block, the constant 1, zeros elsewhere
        own = np.zeros(D, bool)
        own[k * 5:(k + 1) * 5] = own[-1] = True
        assert np.all(phis[k][:, ~own] == 0) and np.abs(phis[k][:, own[:-1].nonzero()[0]]).max() > 0
    # perturbing member 1's rows changes member 1's rollout and no other member's
    acts = rng.uniform(-2, 2, (4, 15, 1)).astype(np.float32)
    W = model.W0.detach().numpy()
    W2 = W.copy()
    W2[5:10] += 0.5
    for k in range(K):
        moved = np.abs(_stepped(model, W2, acts, k) - _stepped(model, W, acts, k)).max()
        assert (moved > 1e-3) if k == 1 else (moved == 0)


def test_the_rollout_graph_plans_on_every_members_own_head_and_passes_parity(heads_artifact, sessions_agree):
    rt = load(heads_artifact)
    model = Checkpoint.load(heads_artifact / "model.pt").model()
    assert rt.manifest.ensemble == K and rt.feature_dim == D
    assert all(v < 1e-3 for k, v in rt.manifest.parity.items() if k != "tolerance")
    acts = np.random.default_rng(1).uniform(-2, 2, (4, 15, 1)).astype(np.float32)
    terms = CostTerms.build(rt.default_cost.merged({"reward_weight": 0.0}, 3, 1), 15, rt.feature_dim)
    _, states = rt.dynamics.rollout(OBS, rt.h0, rt.W0, acts, terms)
    members = np.stack([_stepped(model, rt.W0, acts, k) for k in range(K)])  # (K, N, H, O)
    np.testing.assert_allclose(states, members.mean(0), atol=1e-4)
    # every mode adapts the one (D, P) head, on ONNX and on the torch model alike
    ckpt = Checkpoint.load(heads_artifact / "model.pt")
    sessions_agree(rt, torch_runtime(ckpt.model(), ckpt), np.random.default_rng(2), observes=5)


def test_one_member_exports_with_its_own_head_and_its_marginal_prior(heads_artifact, tmp_path):
    model = Checkpoint.load(heads_artifact / "model.pt").model()
    manifest = export_checkpoint(heads_artifact / "model.pt", tmp_path / "m2", ExportConfig(horizons=(15,), member=2))
    assert manifest.ensemble == 1 and manifest.feature_dim == 6  # its 5 features and the constant
    assert all(v < 1e-3 for k, v in manifest.parity.items() if k != "tolerance")
    rt = load(tmp_path / "m2")
    rows = model.head_rows(2).numpy()
    np.testing.assert_array_equal(rt.W0, model.W0.detach().numpy()[rows])
    acts = np.random.default_rng(3).uniform(-2, 2, (4, 15, 1)).astype(np.float32)
    terms = CostTerms.build(rt.default_cost.merged({"reward_weight": 0.0}, 3, 1), 15, rt.feature_dim)
    _, states = rt.dynamics.rollout(OBS, rt.h0, rt.W0, acts, terms)
    np.testing.assert_allclose(states, _stepped(model, model.W0.detach().numpy(), acts, 2), atol=1e-4)
    # its Bayesian prior is the ensemble's prior marginalized onto its rows (up to the 1e-3 jitter)
    plain = model.member_model(2)
    with torch.no_grad():
        cov = torch.linalg.inv(model.prior_precision().double())[rows][:, rows]
        np.testing.assert_allclose(torch.linalg.inv(plain.prior_precision().double()), cov, rtol=1e-2, atol=1e-3)


def test_member_heads_need_an_ensemble_whose_size_divides_the_features():
    with pytest.raises(ValueError, match="--member-heads needs --ensemble"):
        TrainConfig(ensemble=1, member_heads=True)
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(ensemble=3, feature_dim=32, member_heads=True)
    with pytest.raises(ValueError, match="member_heads"):
        DynamicsModel(ModelArgs(3, 1, feature_dim=32, ensemble=3, member_heads=True))
    assert not ModelArgs(3, 1).member_heads  # checkpoints written before the option load as shared heads
