"""`tools/planner_ceiling.py` and `tools/plan_gap.py` as scripts, on a tiny half-cheetah artifact: the commands
docs/cadm.md quotes run, write what they say they write, and refuse bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mbmrl.export.config import ExportConfig
from mbmrl.export.onnx_export import export_run
from mbmrl.train.config import TrainConfig
from mbmrl.train.families import get_family
from mbmrl.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*(Box observation space|different from the unwrapped)")]


@pytest.fixture(scope="module")
def cheetah_artifact(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cheetah")
    run = train(TrainConfig(family="halfcheetah", out=str(tmp / "run"), n_tasks=3, episodes_per_task=1, iters=5,
                            batch_size=4, seq_len=32, hidden_size=8, feature_dim=8, mlp_width=16, oracle=False,
                            progress=False, tensorboard=False))
    return export_run(ExportConfig(run=str(run), out=str(tmp / "artifact"), horizons=(30,)))


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_planner_ceiling_flies_the_simulator_as_the_model(cheetah_artifact, tmp_path):
    out = tmp_path / "ceiling.json"
    done = tool("planner_ceiling.py", str(cheetah_artifact), "--split", "moderate_high", "--max-tasks", "1",
                "--steps", "20", "--posture", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    first_task = get_family("halfcheetah").test_tasks("moderate_high")[0][1]
    assert row["params"] == first_task and row["model_params"] == first_task and row["steps"] == 20
    assert result["mean_return"] == pytest.approx(row["return"])
    assert result["planner"]["horizon"] == 30  # the artifact's own planner: the family's default
    posture = row["posture"]
    assert 0 <= posture["on back"] + posture["upright"] <= 1 and len(posture["velocity per 100 steps"]) == 1
    # a perfect model gets the cheetah going forward within its first 20 steps
    assert posture["velocity per 100 steps"][0] > 0.3, posture


def test_planner_ceiling_with_a_fixed_model_records_it_and_refuses_a_gain_of_zero(cheetah_artifact, tmp_path):
    out = tmp_path / "fixed.json"
    nominal = {"mass_scale": 1.0, "damping_scale": 1.0}
    done = tool("planner_ceiling.py", str(cheetah_artifact), "--split", "moderate_high", "--max-tasks", "1",
                "--steps", "3", "--model-params", json.dumps(nominal), "--model-gain", "1.5", "--json", str(out))
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["model_params"] == nominal and row["params"] != nominal and row["model_gain"] == 1.5
    refused = tool("planner_ceiling.py", str(cheetah_artifact), "--model-gain", "0")
    assert refused.returncode != 0 and "--model-gain must be > 0" in refused.stderr


def test_plan_gap_compares_each_plans_predicted_and_simulated_velocity(cheetah_artifact, tmp_path):
    out = tmp_path / "gap.json"
    done = tool("plan_gap.py", str(cheetah_artifact), "--steps", "10", "--every", "5", "--ceiling", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["split"] == "default" and result["steps"] == 10 and np.isfinite(row["return"])
    for plans in ("own plans", "ceiling plans"):
        assert list(row[plans]) == ["steps 1-5", "steps 6-15", "steps 16-30"]
        assert all(np.isfinite(v["predicted"]) and np.isfinite(v["simulated"]) for v in row[plans].values())
    # the perfect-model planner's plans, simulated, are what it chose them for: faster than the untrained model's
    ceiling, own = row["ceiling plans"]["steps 6-15"], row["own plans"]["steps 6-15"]
    assert ceiling["simulated"] > own["simulated"], (ceiling, own)
    assert "its own plans' velocity" in done.stdout and "perfect-model plans' velocity" in done.stdout
