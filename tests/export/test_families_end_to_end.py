"""Every built-in family trains, exports, serves and evaluates end to end at a tiny budget."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mbmrl.export.config import ExportConfig
from mbmrl.export.onnx_export import export_run
from mbmrl.runtime.client import Client
from mbmrl.runtime.local_server import local_server
from mbmrl.train.config import TrainConfig
from mbmrl.train.evaluation.command import run_eval
from mbmrl.train.evaluation.protocol import EvalConfig
from mbmrl.train.trainer import train


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cartpole", "halfcheetah", "ant", "quadrotor"])
def test_family_trains_exports_serves_and_evaluates(family, tmp_path):
    # random cart-pole episodes end after a few dozen steps: a task's episodes are joined to fill segments
    episodes = 8 if family == "cartpole" else 1
    run = train(TrainConfig(family=family, out=str(tmp_path / "run"), n_tasks=3, episodes_per_task=episodes, iters=5,
                            batch_size=4, seq_len=32, hidden_size=8, feature_dim=8, mlp_width=16, oracle=False,
                            progress=False))
    artifact = export_run(ExportConfig(run=str(run), out=str(tmp_path / "artifact"), horizons=(15,)))
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["family"] == family and manifest["parity"]["rollout_h15/real"] < 1e-2
    # the half-cheetah's pitch is wrapped: its sessions take changes modulo 2pi, as training did
    assert manifest["periodic_obs"] == ({"1": pytest.approx(2 * np.pi)} if family == "halfcheetah" else {})
    # the half-cheetah's adapted models must be clearly better than the prior before they plan (docs/guard.md)
    assert manifest["default_guard"] == ({"leave": 0.5} if family == "halfcheetah" else {})
    with local_server(artifact) as url:
        session = Client(url).new_session(mode="recurrent", seed=0)
        assert session.act(manifest["normalization"]["obs_mean"]).guard["config"]["leave"] == (
            0.5 if family == "halfcheetah" else 1.0)
        obs = manifest["normalization"]["obs_mean"]
        result = session.act(obs)
        assert len(result.action) == manifest["action_dim"]
    out = tmp_path / "eval"
    result = run_eval(EvalConfig(artifact=str(artifact), out=str(out), modes="none,recurrent", windows=1, seeds=1,
                                 episode_steps=10, max_tasks=1, progress=False))
    assert set(result["control"]["recurrent"]) >= {"all"} and (out / "adaptation_curve.png").is_file()
    # prediction windows find room on every family, also where episodes end early (cart-pole)
    assert result["prediction"]["recurrent"]["32"]["one_step_nmse"] is not None
    assert len(result["per_task"]) == len(result["tasks"])
    doc = tmp_path / "results.md"
    subprocess.run([sys.executable, "tools/results_doc.py", "--out", str(doc), str(out)], check=True,
                   cwd=Path(__file__).parents[2])
    text = doc.read_text()
    assert f"## {family}" in text and "--iters 5" in text
    if family == "halfcheetah":  # next to CaDM's Table 1 (moderate test range)
        assert "CaDM paper: vanilla dynamics model | 1026.7" in text
