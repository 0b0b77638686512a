"""The newcomer's journey end to end, at a tiny budget: train, export, serve, adapt and control over HTTP."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_runs_the_whole_loop_and_writes_the_summary(tmp_path):
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "mbmrl.main", "quickstart", "--out", str(out), "--iters", "20", "--n-tasks", "6",
           "--episodes-per-task", "1", "--episode-steps", "12", "--max-tasks", "1", "--windows", "2",
           "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads((out / "summary.json").read_text())
    for key in ("none", "recurrent", "oracle"):
        assert s["prediction_error"][key] >= 0 and s["control_return"][key] <= 0  # pendulum rewards are <= 0
    assert s["context_size"] == 16
    assert set(s["control_return_by_split"]) == {"moderate", "extreme"}
    assert {t["split"] for t in s["tasks"]} == {"moderate", "extreme"}
    assert all({"mass", "length"} <= set(t) for t in s["tasks"])
    assert s["wall_seconds"] > 0
    assert (out / "artifact" / "manifest.json").is_file() and (out / "run" / "config.json").is_file()
    assert "results on test-range pendulums" in proc.stdout
