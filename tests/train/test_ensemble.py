"""Ensembles (`mbmrl train --ensemble K`): K feature MLPs sharing the encoder and the head, trajectory sampling
inside the one rollout graph, exported and served like every other artifact, composable with every mode.

The fixture's ensemble also has depth 3 and linear features (`--feature-activation linear`), so those options are
exported, parity-checked and served here too (every other test trains the default tanh features)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from mbmrl.export.bench_engines import act_flops
from mbmrl.export.config import ExportConfig
from mbmrl.export.int8 import quantize_graph
from mbmrl.export.onnx_export import export_checkpoint, export_run
from mbmrl.runtime import CostTerms, load
from mbmrl.runtime.session import Session
from mbmrl.train.checkpoint import Checkpoint, manifest_for
from mbmrl.train.config import TrainConfig
from mbmrl.train.explore import collect_mpc
from mbmrl.train.families import get_family
from mbmrl.train.model import DynamicsModel, ModelArgs
from mbmrl.train.torch_dynamics import torch_runtime
from mbmrl.train.trainer import train

K = 3


@pytest.fixture(scope="module")
def ensemble_artifact(tmp_path_factory):
    run = tmp_path_factory.mktemp("ens_run")
    cfg = TrainConfig(out=str(run), n_tasks=8, episodes_per_task=1, iters=40, batch_size=16, seq_len=48,
                      hidden_size=8, feature_dim=16, mlp_width=32, mlp_depth=3, window=32, ensemble=K, oracle=False,
                      feature_activation="linear",
                      rollout_steps=3, progress=False, tensorboard=False)
    train(cfg)
    return export_run(ExportConfig(run=str(run), out=str(tmp_path_factory.mktemp("ens") / "artifact"),
                                   horizons=(15,)))


def _members_stepped(model, obs, h, W, actions):
    """Every member's open-loop states, stepped one at a time in torch: (K, N, H, O)."""
    out = []
    with torch.no_grad():
        for k in range(model.args.ensemble):
            x, hp, states = torch.as_tensor(obs)[None].expand(len(actions), -1), model.member(k).fh(h), []
            for t in range(actions.shape[1]):
                x = model.step(x, torch.as_tensor(actions[:, t]), hp, torch.as_tensor(W), k)[0]
                states.append(x)
            out.append(torch.stack(states, 1))
    return torch.stack(out).numpy()


def test_the_artifact_says_it_is_an_ensemble_and_passes_parity(ensemble_artifact):
    m = json.loads((ensemble_artifact / "manifest.json").read_text())
    assert m["ensemble"] == K
    assert all(v < 1e-3 for k, v in m["parity"].items() if k != "tolerance")
    model = Checkpoint.load(ensemble_artifact / "model.pt").model()
    assert len(model.members) == K - 1
    assert len(model.fmid) == 1 and all(len(mm.fmid) == 1 for mm in model.members)  # mlp_depth 3: one more layer
    # the bench's FLOP count (its roofline) counts every hidden layer of every member: here 32 wide, 3 deep
    o, act, d = model.args.obs_dim, model.args.action_dim, model.args.feature_dim
    per_step = (o + act) * 32 + 2 * 32 * 32 + 32 * (d - 1) + d * (o + 1)
    assert act_flops(load(ensemble_artifact), 5, 15) == 2.0 * per_step * 5 * 15 * K


def test_the_rollout_graph_plans_on_the_mean_cost_of_every_member(ensemble_artifact):
    """Trajectory sampling: each candidate rolls through every member; the graph returns the members' mean
    states and cost (here the quadratic cost, computed from each member's own states)."""
    rt = load(ensemble_artifact)
    model = Checkpoint.load(ensemble_artifact / "model.pt").model()
    rng = np.random.default_rng(0)
    obs = np.array([0.5, 0.8, -1.0], np.float32)
    acts = rng.uniform(-2, 2, (4, 15, 1)).astype(np.float32)
    cost = rt.default_cost.merged({"reward_weight": 0.0}, 3, 1)
    terms = CostTerms.build(cost, 15, rt.feature_dim)
    costs, states = rt.dynamics.rollout(obs, rt.h0, rt.W0, acts, terms)
    members = _members_stepped(model, obs, torch.as_tensor(rt.h0)[None], rt.W0, acts)  # (K, N, H, O)
    np.testing.assert_allclose(states, members.mean(0), atol=1e-4)
    step_w = np.ones(15, np.float32)
    step_w[-1] = terms.terminal_weight[0]
    quad = (((members - terms.target) ** 2 * terms.q).sum(-1) * step_w).sum(-1)  # (K, N)
    expected = quad.mean(0) + (acts**2 * terms.r).sum((1, 2))
    np.testing.assert_allclose(costs, expected, rtol=1e-4, atol=1e-3)
    # the members disagree (different initializations): otherwise the ensemble would be K copies of one model
    assert np.abs(members[0] - members[1]).max() > 1e-3


def test_features_are_the_members_mean_so_the_head_predicts_the_ensemble_mean(ensemble_artifact):
    rt = load(ensemble_artifact)
    model = Checkpoint.load(ensemble_artifact / "model.pt").model()
    rng = np.random.default_rng(1)
    obs, act = rng.normal(size=(5, 3)).astype(np.float32), rng.uniform(-2, 2, (5, 1)).astype(np.float32)
    h = np.repeat(rt.h0[None], 5, 0)
    phi = rt.dynamics.features(obs, act, h)  # (5, D) from ONNX
    with torch.no_grad():
        phis = model.member_features(*(torch.as_tensor(x) for x in (obs, act, h))).numpy()  # (K, 5, D)
    np.testing.assert_allclose(phi, phis.mean(0), atol=1e-5)
    np.testing.assert_allclose(phi @ rt.W0, (phis @ rt.W0).mean(0), atol=1e-5)


def test_every_mode_runs_on_the_ensemble_and_both_engines_agree(ensemble_artifact, sessions_agree):
    onnx_rt = load(ensemble_artifact)
    ckpt = Checkpoint.load(ensemble_artifact / "model.pt")
    torch_rt = torch_runtime(ckpt.model(), ckpt)
    assert set(onnx_rt.modes) == {"none", "recurrent", "gradient", "bayes"}
    sessions_agree(onnx_rt, torch_rt, np.random.default_rng(2), observes=5)


def test_one_member_exports_as_a_plain_artifact_that_predicts_as_that_member(ensemble_artifact, tmp_path):
    """`mbmrl export --member k`: member k's feature MLP with the shared encoder and head, a plain artifact
    (1/K of the rollout compute) whose rollouts are member k's own, parity-checked like any other."""
    model = Checkpoint.load(ensemble_artifact / "model.pt").model()
    manifest = export_checkpoint(ensemble_artifact / "model.pt", tmp_path / "m1",
                                 ExportConfig(horizons=(15,), member=1))
    assert manifest.ensemble == 1 and manifest.provenance["member"] == 1
    assert all(v < 1e-3 for k, v in manifest.parity.items() if k != "tolerance")
    rt = load(tmp_path / "m1")
    acts = np.random.default_rng(3).uniform(-2, 2, (4, 15, 1)).astype(np.float32)
    obs = np.array([0.5, 0.8, -1.0], np.float32)
    terms = CostTerms.build(rt.default_cost.merged({"reward_weight": 0.0}, 3, 1), 15, rt.feature_dim)
    _, states = rt.dynamics.rollout(obs, rt.h0, rt.W0, acts, terms)
    members = _members_stepped(model, obs, torch.as_tensor(rt.h0)[None], rt.W0, acts)  # (K, N, H, O)
    np.testing.assert_allclose(states, members[1], atol=1e-4)
    assert np.abs(states - members[0]).max() > 1e-3
    with pytest.raises(ValueError, match="member"):
        model.member_model(K)
    with pytest.raises(ValueError, match="whole ensemble"):
        ExportConfig(member=-2)  # was read as the whole ensemble
    with pytest.raises(ValueError, match="mpc-member"):
        TrainConfig(ensemble=2, mpc_member=2)


def test_exploration_can_fly_one_member_of_the_ensemble(ensemble_artifact):
    """`--mpc-member k`: the exploring sessions plan with member k alone (1/K of the collection compute): the data
    are those its plain model collects, not the whole ensemble's; the model in training is handed back as it was."""
    ckpt = Checkpoint.load(ensemble_artifact / "model.pt")
    model = ckpt.model().train()
    facts = ckpt.facts()

    def fly(m, member):
        return collect_mpc(m, facts, get_family("pendulum"), n_tasks=1, episodes_per_task=1, seg_len=50, noise=0.1,
                           rng=np.random.default_rng(0), first_task_id=0, progress=False, member=member)[0].actions

    one = fly(model, 1)
    np.testing.assert_array_equal(one, fly(model.member_model(1), -1))
    assert np.abs(one - fly(model, -1)).max() > 1e-3
    assert model.training and model.args.ensemble == K


def test_thompson_exploration_flies_task_i_with_member_i_mod_k(ensemble_artifact):
    """`--mpc-thompson`: each exploring task plans with one member in turn, so each member's own plans are
    corrected by the data; a task's episode is exactly what that member alone collects on it."""
    ckpt = Checkpoint.load(ensemble_artifact / "model.pt")
    model = ckpt.model().train()
    facts = ckpt.facts()

    def fly(**kw):
        segs = collect_mpc(model, facts, get_family("pendulum"), n_tasks=K + 1, episodes_per_task=1, seg_len=50,
                           noise=0.1, rng=np.random.default_rng(0), first_task_id=0, progress=False, **kw)[0]
        return [segs.actions[segs.task_ids == i] for i in range(K + 1)]  # each task's segments

    thompson = fly(thompson=True)
    alone = [fly(member=k) for k in range(K)]
    for i, actions in enumerate(thompson):
        np.testing.assert_array_equal(actions, alone[i % K][i])
    assert np.abs(thompson[1] - alone[0][1]).max() > 1e-3
    assert model.training
    with pytest.raises(ValueError, match="mpc-thompson"):
        TrainConfig(ensemble=1, mpc_thompson=True)
    with pytest.raises(ValueError, match="mpc-thompson"):
        TrainConfig(ensemble=2, mpc_member=0, mpc_thompson=True)


def test_an_ensemble_starts_its_sessions_without_the_familys_actuator_gain(ensemble_artifact):
    """The half-cheetah's default gain adaptation hurts ensembles (docs/cadm.md): their manifest leaves it off, a
    single member exported alone keeps it, and a session that asks for the gain still gets it."""
    ckpt = Checkpoint.load(ensemble_artifact / "model.pt")
    fam = {**ckpt.family_info, "default_gain": {"max_gain": 2.5}}
    ckpt = dataclasses.replace(ckpt, family_info=fam)
    model = ckpt.model()
    assert manifest_for(model, ckpt).default_gain == {}
    assert manifest_for(model.member_model(0), ckpt).default_gain == {"max_gain": 2.5}
    assert Session(load(ensemble_artifact), "none", gain=True).gain is not None


def test_int8_quantizes_every_members_layer(ensemble_artifact, tmp_path):
    n = quantize_graph(ensemble_artifact / "rollout.onnx", tmp_path / "q.onnx", ("f2",))
    assert n == K * 15  # one f2 per member and step
    n = quantize_graph(ensemble_artifact / "rollout.onnx", tmp_path / "q2.onnx", ("fmid",))
    assert n == K * 15  # --mlp-depth 3: one fmid layer per member and step


def test_a_plain_model_has_no_member_parameters_and_old_checkpoints_load():
    m = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, mlp_width=8))
    assert not any(k.startswith("members.") for k in m.state_dict())
    assert len(m.fmid) == 0  # the default depth (2) adds no layer: checkpoints from before mlp_depth load as they were
    old = ("ensemble", "mlp_depth", "feature_activation")  # written before these options existed
    args = {k: v for k, v in m.checkpoint()["args"].items() if k not in old}
    assert DynamicsModel.from_checkpoint({"args": args, "state_dict": m.state_dict()}).args.feature_activation == "tanh"
    with pytest.raises(ValueError, match="ensemble"):
        TrainConfig(ensemble=0)
    with pytest.raises(ValueError, match="mlp-depth"):
        TrainConfig(mlp_depth=1)
    with pytest.raises(ValueError, match="feature-activation"):
        TrainConfig(feature_activation="relu")


def test_linear_features_are_the_last_layer_unsquashed():
    """`--feature-activation linear`: phi is f3's output itself (it may leave [-1, 1]: a prediction extrapolates
    past the data as a plain MLP's does), tanh squashes the same pre-activation; the constant 1 stays last."""
    torch.manual_seed(0)
    lin = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, mlp_width=8,
                                  feature_activation="linear"))
    tanh = DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, hidden_size=4, feature_dim=6, mlp_width=8))
    tanh.load_state_dict(lin.state_dict())
    with torch.no_grad():
        lin.f3.weight.mul_(50.0)
        tanh.f3.weight.mul_(50.0)
        obs, act, h = torch.randn(32, 3), torch.randn(32, 1), torch.randn(32, 4)
        phi_lin, phi_tanh = lin.features(obs, act, h), tanh.features(obs, act, h)
    assert phi_lin[:, :-1].abs().max() > 1.5 and phi_tanh[:, :-1].abs().max() <= 1.0
    torch.testing.assert_close(torch.tanh(phi_lin[:, :-1]), phi_tanh[:, :-1])
    assert torch.all(phi_lin[:, -1] == 1.0)
    with pytest.raises(ValueError, match="feature_activation"):
        DynamicsModel(ModelArgs(obs_dim=3, action_dim=1, feature_activation="relu"))
