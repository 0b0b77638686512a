"""`tools/refit.py`: a fresh model with other settings trained on a finished run's data, exported as any run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mbmrl.export.config import ExportConfig
from mbmrl.export.onnx_export import export_run
from mbmrl.train.checkpoint import Checkpoint

ROOT = Path(__file__).resolve().parents[2]


def refit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "refit.py"), *args], capture_output=True, text=True)


def test_refit_trains_the_settings_given_on_the_runs_data_with_its_normalization(tiny_run, tmp_path):
    out = tmp_path / "refit"
    done = refit(str(tiny_run), "--out", str(out), "--iters", "5", "mlp_depth=3", "mlp_width=24", "progress=false")
    assert done.returncode == 0, done.stderr
    old, new = Checkpoint.load(tiny_run / "model.pt"), Checkpoint.load(out / "model.pt")
    assert new.args["mlp_depth"] == 3 and new.args["mlp_width"] == 24 and new.config["mlp_depth"] == 3
    assert new.config["feature_dim"] == old.config["feature_dim"]  # everything not given is the run's own
    for name in ("obs_mean", "obs_std", "delta_std", "reward_mean"):  # --stats run: the run's normalization
        torch.testing.assert_close(new.state_dict[name], old.state_dict[name])
    assert (out / "data.npz").resolve() == (tiny_run / "data.npz").resolve()
    assert json.loads((out / "config.json").read_text())["refit_of"] == str(tiny_run)
    artifact = export_run(ExportConfig(run=str(out), out=str(tmp_path / "artifact"), horizons=(15,)))
    parity = json.loads((artifact / "manifest.json").read_text())["parity"]
    assert all(v < 1e-3 for k, v in parity.items() if k != "tolerance")


def test_refit_names_an_unknown_setting(tiny_run, tmp_path):
    done = refit(str(tiny_run), "--out", str(tmp_path / "x"), "--iters", "1", "mlp_deep=3")
    assert done.returncode != 0 and "unknown setting 'mlp_deep'" in done.stderr
    with pytest.raises(FileNotFoundError):
        Checkpoint.load(tmp_path / "x" / "model.pt")
