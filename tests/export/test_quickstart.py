"""The newcomer's journey end to end, at a tiny budget: train, export, serve, adapt and control over HTTP."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_runs_the_whole_loop_and_writes_the_summary(tmp_path):
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "mbmrl.export.cli", "quickstart", "--out", str(out), "--iters", "20", "--n-tasks", "6",
           "--episodes-per-task", "1", "--episode-steps", "12", "--max-tasks", "1", "--windows", "2",
           "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["context_size"] == 16
    assert set(s["prediction_error"]) == {"none", "recurrent", "gradient", "bayes", "oracle"}
    assert set(s["control_return_by_split"]) == {"moderate", "extreme"}
    assert set(s["tasks_hurt"]) == {"recurrent", "gradient", "bayes", "oracle"}  # returns below none's, per task
    assert {t["split"] for t in s["tasks"]} == {"moderate", "extreme"}
    assert all({"mass", "length"} <= set(t) for t in s["tasks"])
    assert s["wall_seconds"] > 0
    assert (out / "artifact" / "manifest.json").is_file() and (out / "run" / "config.json").is_file()
    assert "results on test-range pendulums" in proc.stdout
    # what the robot got over HTTP is exactly what the same sessions give in process
    from functools import partial

    from mbmrl.runtime import Session, load
    from mbmrl.train.evaluation.evaluate import evaluate
    from mbmrl.train.evaluation.protocol import EvalProtocol
    from mbmrl.train.families import get_family

    rt, oracle = load(out / "artifact"), load(out / "artifact" / "oracle")
    family = get_family("pendulum")
    tasks = [(t["split"], {k: v for k, v in t.items() if k != "split"}) for t in s["tasks"]]
    modes = list(s["prediction_error"])
    backends = {m: partial(Session, oracle if m == "oracle" else rt) for m in modes}
    local = evaluate(EvalProtocol(contexts=(16,), horizon=1, windows=2, seeds=2, episode_steps=12, data_seed=10_000),
                     family, tasks, modes, lambda: backends, rt.norm.delta_std, progress=False)
    for m in modes:
        assert s["prediction_error"][m] == pytest.approx(local.prediction(m, 16), rel=1e-5)
        assert s["control_return"][m] == pytest.approx(local.mean_return(m), rel=1e-5)
