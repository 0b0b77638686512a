"""Fine-tuning from recorded sessions: `mbmrl train --init RUN --data RECORDINGS` at a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mcap")


def test_recorded_sessions_become_training_tasks(tiny_run, tiny_artifact, tmp_path):
    from mbmrl.runtime import Session, load
    from mbmrl.runtime.recording import Recorder
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.families import get_family
    from mbmrl.train.trainer import train

    family = get_family("pendulum")
    rt = load(tiny_artifact)
    for k, (where, steps) in enumerate((("rec", 60), ("rec", 60), ("short", 30))):  # sessions on pendulums
        rec = Recorder(tmp_path / where, f"s{k}")
        s = Session(rt, "recurrent", seed=k, recorder=rec)
        env = family.make_env({"mass": 1.0, "length": 1.0 + 0.1 * k}, "default")
        obs, _ = env.reset(seed=k)
        for _ in range(steps):
            action = s.act(obs).action
            nxt, reward, *_ = env.step(action)
            s.observe(obs, action, nxt, float(reward))
            obs = nxt
        rec.close()
    run = train(TrainConfig(out=str(tmp_path / "ft"), init=str(tiny_run), data=str(tmp_path / "rec"), iters=5,
                            data_repeat=3, progress=False))
    config = json.loads((run / "config.json").read_text())
    base = json.loads((tiny_run / "config.json").read_text())
    assert config["mlp_width"] == base["mlp_width"] == 32 and config["init"] == str(tiny_run)  # the run's model
    assert (run / "model.pt").is_file() and not (run / "oracle.pt").exists()  # recorded tasks: no oracle
    metrics = json.loads((run / "metrics.json").read_text())
    before = len(np.load(tiny_run / "data.npz")["task_ids"])
    assert metrics["n_segments"] == before + 2  # one 48-step segment per 60-transition session
    with pytest.raises(ValueError, match="no recorded stretch of 48"):  # the run's segment length
        train(TrainConfig(out=str(tmp_path / "ft2"), init=str(tiny_run), data=str(tmp_path / "short"), iters=1,
                          progress=False))


def test_fine_tuning_a_protocol_run_collects_nothing_new(tmp_path):
    """`--init` of a `--protocol cadm` run: the fine-tune trains on the saved data only. The protocol used to
    refill `mpc_rounds` (0 there, the default) with CaDM's 19 rounds, flying new episodes."""
    import dataclasses

    from mbmrl.train.config import TrainConfig, with_protocol
    from mbmrl.train.trainer import fine_tune_config

    run = tmp_path / "run"
    run.mkdir()
    saved = with_protocol(TrainConfig(family="halfcheetah", protocol="cadm", out=str(run)))
    assert saved.mpc_rounds == 19
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(saved)))
    cfg = with_protocol(fine_tune_config(TrainConfig(init=str(run), iters=7, out=str(tmp_path / "ft"))))
    assert cfg.mpc_rounds == 0 and cfg.iters == 7 and cfg.family == "halfcheetah"
    assert cfg.rollout_steps == saved.rollout_steps and cfg.mpc_iters == saved.mpc_iters
    # the planning cost: the run's own unless this call gives one (`--cost`)
    upright = json.dumps({"q": [0.0, 1.0] + [0.0] * 15})
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(dataclasses.replace(saved, cost=upright))))
    assert fine_tune_config(TrainConfig(init=str(run), out=str(tmp_path / "ft"))).cost == upright
    assert fine_tune_config(TrainConfig(init=str(run), out=str(tmp_path / "ft"), cost="{}")).cost == "{}"
