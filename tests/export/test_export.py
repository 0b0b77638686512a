"""The artifact: every graph checked, parity recorded, torch vs ORT at new batch sizes."""

import json

import numpy as np
import onnx
import pytest
import torch
from mbmrl.export.graphs import EncoderStep, Features, Rollout
from mbmrl.export.onnx_export import example_inputs
from mbmrl.runtime import Runtime
from mbmrl.runtime.manifest import sha256_file
from mbmrl.train.model import DynamicsModel


@pytest.fixture(scope="module")
def model(tiny_artifact):
    ckpt = torch.load(tiny_artifact / "model.pt", weights_only=False)
    return DynamicsModel.from_checkpoint(ckpt).eval()


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


def test_every_graph_passes_the_full_onnx_checker(tiny_artifact):
    for f in ("encoder_step.onnx", "features.onnx", "rollout.onnx", "oracle/features.onnx"):
        onnx.checker.check_model(onnx.load(str(tiny_artifact / f)), full_check=True)
    assert not list(tiny_artifact.glob("*.data")), "weights must be inside the .onnx files"


@pytest.mark.parametrize("batch", [1, 7])
def test_torch_and_onnxruntime_agree_at_new_batch_sizes(tiny_artifact, model, batch):
    rt = Runtime(tiny_artifact)
    ex = example_inputs(model, batch=batch, horizon=15)
    with torch.no_grad():
        h_ref = EncoderStep(model)(*ex["encoder_step"]).numpy()
        phi_ref = Features(model)(*ex["features"]).numpy()
        ex_r = list(ex["rollout"])
        cost_ref, states_ref = (t.numpy() for t in Rollout(model, 15)(*ex_r))
    np.testing.assert_allclose(rt.encoder_step(*[t.numpy() for t in ex["encoder_step"]]), h_ref, atol=1e-5)
    np.testing.assert_allclose(rt.features(*[t.numpy() for t in ex["features"]]), phi_ref, atol=1e-5)
    cost, states = rt._rollouts[15].run(None, {n: t.numpy() for n, t in zip(Rollout.input_names, ex_r, strict=True)})
    np.testing.assert_allclose(states, states_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(cost, cost_ref, atol=1e-3, rtol=1e-4)


def test_the_runtime_rollout_equals_stepping_the_model_in_torch(tiny_artifact, model):
    """The rollout graph's cost is the contract's cost (quadratic, reward, risk) of the model's own predictions."""
    rt = Runtime(tiny_artifact)
    rng = np.random.default_rng(0)
    obs = np.array([0.5, 0.8, -1.0], np.float32)
    acts = rng.uniform(-2, 2, (3, 15, 1)).astype(np.float32)
    c = rt.default_cost.merged({"uncertainty_weight": 0.7}, 3, 1)
    w_cov = 0.2 * np.eye(rt.feature_dim, dtype=np.float32)  # risk term: 0.7 * 0.2 * |phi|^2 per step
    costs, states = rt.rollout(obs, rt.h0, rt.W0, acts, c, w_cov=w_cov)
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
                total += w * float((((x[0].numpy() - c.target) ** 2) * c.q).sum())
                total += float((acts[n, t] ** 2 * c.r).sum()) - c.reward_weight * float(model.reward(out)[0])
                np.testing.assert_allclose(states[n, t], x[0].numpy(), atol=1e-4)
            assert costs[n] == pytest.approx(total, rel=1e-4, abs=1e-4)
