"""The artifact: every graph checked, parity recorded, torch vs ORT at new batch sizes."""

import json

import numpy as np
import onnx
import pytest
import torch
from mbmrl.export.graphs import EncoderStep, Features, Rollout, example_inputs
from mbmrl.runtime import CostTerms, load
from mbmrl.runtime.artifact import Params, sha256_file
from mbmrl.runtime.dynamics import ROLLOUT_INPUTS, ROLLOUT_RISK_INPUTS, rollout_feeds
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.torch_dynamics import torch_runtime


@pytest.fixture(scope="module")
def model(tiny_artifact):
    return Checkpoint.load(tiny_artifact / "model.pt").model()


def test_manifest_lists_every_file_with_its_hash_and_parity(tiny_artifact):
    m = json.loads((tiny_artifact / "manifest.json").read_text())
    for name, entry in m["files"].items():
        assert sha256_file(tiny_artifact / name) == entry["sha256"]
    assert {"encoder_step.onnx", "features.onnx", "rollout.onnx", "rollout_h30.onnx", "params.npz"} <= set(m["files"])
    for key in ("encoder_step", "features", "rollout_h15", "rollout_h30"):
        for kind in ("random", "real"):
            assert m["parity"][f"{key}/{kind}"] < 1e-3
    assert m["obs_dim"] == 3 and m["action_dim"] == 1 and m["default_cost"]["target"] == [1.0, 0.0, 0.0]
    assert m["provenance"]["task_family"] == "pendulum"
    assert set(m["modes"]) == {"none", "recurrent", "gradient", "bayes"}
    # every value once: settings in the manifest, learned arrays in params.npz
    assert m["modes"]["gradient"] == {"steps": 2, "window": 32}
    assert set(m["modes"]["bayes"]) == {"window", "noise_prior"}
    params = Params.load(tiny_artifact / "params.npz")
    assert params.step_size.shape == params.noise_var.shape == (4,) and params.V is None


def test_every_graph_passes_the_full_onnx_checker(tiny_artifact):
    for f in ("encoder_step.onnx", "features.onnx", "rollout.onnx", "oracle/features.onnx"):
        onnx.checker.check_model(onnx.load(str(tiny_artifact / f)), full_check=True)
    assert not list(tiny_artifact.glob("*.data")), "weights must be inside the .onnx files"


@pytest.mark.parametrize("batch", [1, 7])
def test_torch_and_onnxruntime_agree_at_new_batch_sizes(tiny_artifact, model, batch):
    dyn = load(tiny_artifact).dynamics
    ex = example_inputs(model, batch=batch, horizon=15)
    with torch.no_grad():
        h_ref = EncoderStep(model)(*ex["encoder_step"]).numpy()
        phi_ref = Features(model)(*ex["features"]).numpy()
        ex_r = list(ex["rollout"])
        cost_ref, states_ref = (t.numpy() for t in Rollout(model, 15)(*ex_r))
    np.testing.assert_allclose(dyn.encoder_step(*[t.numpy() for t in ex["encoder_step"]]), h_ref, atol=1e-5)
    np.testing.assert_allclose(dyn.features(*[t.numpy() for t in ex["features"]]), phi_ref, atol=1e-5)
    n = [t.numpy() for t in ex_r]
    cost, states = dyn.rollout(n[0][0], n[1][0], n[2], n[3], CostTerms(*n[4:]))
    np.testing.assert_allclose(states, states_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(cost, cost_ref, atol=1e-3, rtol=1e-4)


def test_the_runtime_rollout_equals_stepping_the_model_in_torch(tiny_artifact, model):
    """The rollout graph's cost is the contract's cost (quadratic, linear, reward, risk) of the model's own
    predictions."""
    rt = load(tiny_artifact)
    rng = np.random.default_rng(0)
    obs = np.array([0.5, 0.8, -1.0], np.float32)
    acts = rng.uniform(-2, 2, (3, 15, 1)).astype(np.float32)
    c = rt.default_cost.merged({"uncertainty_weight": 0.7, "linear": [0.3, -0.2, 0.1]}, 3, 1)
    w_cov = 0.2 * np.eye(rt.feature_dim, dtype=np.float32)  # risk term: 0.7 * 0.2 * |phi|^2 per step
    costs, states = rt.dynamics.rollout(obs, rt.h0, rt.W0, acts, CostTerms.build(c, 15, rt.feature_dim, w_cov))
    with torch.no_grad():
        for n in range(3):
            x, total = torch.as_tensor(obs)[None], 0.0
            for t in range(15):
                a = torch.as_tensor(acts[n, t])[None]
                phi = model.features(x, a, torch.as_tensor(rt.h0)[None])
                out = phi @ model.W0
                total += 0.7 * 0.2 * float((phi**2).sum())
                x = model.next_obs(x, out)
                w = c.terminal_weight if t == 14 else 1.0
                total += w * float((((x[0].numpy() - c.target) ** 2) * c.q).sum() + x[0].numpy() @ c.linear)
                total += float((acts[n, t] ** 2 * c.r).sum()) - c.reward_weight * float(model.reward(out)[0])
                np.testing.assert_allclose(states[n, t], x[0].numpy(), atol=1e-4)
            assert costs[n] == pytest.approx(total, rel=1e-4, abs=1e-4)


def test_the_same_session_on_both_engines_gives_the_same_actions(tiny_artifact, model, sessions_agree):
    """Parity of the whole controller: one `Session` over ONNX Runtime and over torch, same seed and data."""
    onnx_rt, torch_rt = load(tiny_artifact), torch_runtime(model, Checkpoint.load(tiny_artifact / "model.pt"))
    assert torch_rt.manifest.modes == onnx_rt.manifest.modes
    sessions_agree(onnx_rt, torch_rt, np.random.default_rng(1), observes=6)


def test_normalization_is_the_same_in_training_and_in_the_runtime(tiny_artifact, model):
    """Targets and predicted next observations: `Normalization` (numpy) = `DynamicsModel` (torch)."""
    norm = load(tiny_artifact).norm
    rng = np.random.default_rng(2)
    obs, nxt = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    rew, out = rng.normal(size=5).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    t = torch.as_tensor
    with torch.no_grad():
        y = model.targets(t(obs), t(nxt), t(rew)).numpy()
        np.testing.assert_allclose(norm.normalize_target(nxt - obs, rew), y, rtol=1e-5, atol=1e-5)
        x = model.next_obs(t(obs), t(out)).numpy()
        np.testing.assert_allclose(norm.next_obs(obs, out), x, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(norm.reward(out), model.reward(t(out)).numpy(), rtol=1e-6, atol=1e-6)


def test_the_plain_rollout_graph_has_no_risk_term_and_the_risk_graph_runs_only_when_it_is_on(tiny_artifact, model):
    """`rollout*.onnx` take no w_cov (no (D, D) product); `rollout_risk*.onnx` add the risk term; the runtime
    picks by `CostTerms.risk`, and both engines cost the same either way."""
    m = json.loads((tiny_artifact / "manifest.json").read_text())
    for H, suffix in ((15, ""), (30, "_h30")):
        plain, risky = m["graphs"][f"rollout{suffix}"], m["graphs"][f"rollout_risk{suffix}"]
        assert plain["horizon"] == risky["horizon"] == H and risky["risk"] is True and "risk" not in plain
        assert tuple(plain["inputs"]) == ROLLOUT_INPUTS and tuple(risky["inputs"]) == ROLLOUT_RISK_INPUTS
        graph = onnx.load(str(tiny_artifact / plain["file"]))
        assert [i.name for i in graph.graph.input] == list(ROLLOUT_INPUTS)
        assert len(graph.graph.node) < len(onnx.load(str(tiny_artifact / risky["file"])).graph.node)
        assert len(graph.graph.node) <= 12 * H + 60, "the lean rollout graph has grown: ~9 nodes per step"
    rt, trt = load(tiny_artifact), torch_runtime(model, Checkpoint.load(tiny_artifact / "model.pt"))
    rng = np.random.default_rng(4)
    obs, acts = np.array([0.3, 0.9, 0.5], np.float32), rng.uniform(-2, 2, (5, 15, 1)).astype(np.float32)
    eye = 0.2 * np.eye(rt.feature_dim, dtype=np.float32)
    off = CostTerms.build(rt.default_cost, 15, rt.feature_dim)  # zero weight: the plain graph
    on = CostTerms.build(rt.default_cost.merged({"uncertainty_weight": 0.5}, 3, 1), 15, rt.feature_dim, eye)
    zero_cov = CostTerms.build(rt.default_cost.merged({"uncertainty_weight": 0.5}, 3, 1), 15, rt.feature_dim)
    assert not off.risk and on.risk and not zero_cov.risk  # a zero w_cov adds nothing: the plain graph runs
    assert set(rollout_feeds(obs, rt.h0, rt.W0, acts, off)) == set(ROLLOUT_INPUTS)
    c_off, s_off = rt.dynamics.rollout(obs, rt.h0, rt.W0, acts, off)
    c_on, s_on = rt.dynamics.rollout(obs, rt.h0, rt.W0, acts, on)
    np.testing.assert_allclose(s_on, s_off, atol=1e-6)
    with torch.no_grad():  # the risk term: 0.5 * 0.2 * |phi|^2 summed over the steps, phi's constant 1 included
        x = np.concatenate([np.broadcast_to(obs, (5, 1, 3)), s_off[:, :-1]], axis=1).reshape(-1, 3)
        h = torch.as_tensor(rt.h0)[None].expand(len(x), -1)
        phi = model.features(torch.as_tensor(x), torch.as_tensor(acts.reshape(-1, 1)), h).numpy()
    risk = 0.5 * 0.2 * (phi.astype(np.float64) ** 2).sum(-1).reshape(5, 15).sum(-1)
    np.testing.assert_allclose(c_on - c_off, risk, rtol=1e-4, atol=1e-3)
    for terms, (c, s) in ((off, (c_off, s_off)), (on, (c_on, s_on))):
        ct, st = trt.dynamics.rollout(obs, rt.h0, rt.W0, acts, terms)
        np.testing.assert_allclose(st, s, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(ct, c, atol=1e-3, rtol=1e-4)


def test_an_artifact_whose_rollout_takes_w_cov_still_runs_with_and_without_risk(tiny_artifact, tmp_path):
    """A format-2 artifact exported before the risk variants (one rollout graph with all eleven inputs, no
    flag) serves both cases from that graph."""
    import shutil
    copy = tmp_path / "legacy"
    shutil.copytree(tiny_artifact, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["graphs"] = {k: g for k, g in m["graphs"].items() if "horizon" not in g}
    m["graphs"]["rollout"] = {**json.loads((tiny_artifact / "manifest.json").read_text())["graphs"]["rollout_risk"]}
    del m["graphs"]["rollout"]["risk"]
    (copy / "manifest.json").write_text(json.dumps(m))
    legacy, rt = load(copy, verify=False), load(tiny_artifact)
    assert legacy.horizons == [15]
    acts = np.random.default_rng(5).uniform(-2, 2, (4, 15, 1)).astype(np.float32)
    obs = np.array([0.3, 0.9, 0.5], np.float32)
    for uw, w_cov in ((0.0, None), (0.5, 0.2 * np.eye(rt.feature_dim, dtype=np.float32))):
        terms = CostTerms.build(rt.default_cost.merged({"uncertainty_weight": uw}, 3, 1), 15, rt.feature_dim, w_cov)
        a, b = legacy.dynamics.rollout(obs, rt.h0, rt.W0, acts, terms), rt.dynamics.rollout(obs, rt.h0, rt.W0, acts,
                                                                                          terms)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a[1], b[1], atol=1e-6)
