"""`mbmrl train --resume`: a run killed between exploration rounds continues and ends as it would have."""

import json

import numpy as np
import pytest
import torch
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import TrainConfig
from mbmrl.train.data import Segments
from mbmrl.train.trainer import train


def tiny(out, **kw) -> TrainConfig:
    base = dict(family="pendulum", out=str(out), n_tasks=2, episodes_per_task=1, seq_len=50, mpc_rounds=2,
                mpc_tasks=1, iters=5, mpc_iters=5, hidden_size=8, feature_dim=8, mlp_width=32, batch_size=8,
                oracle=False, progress=False, tensorboard=False)
    return TrainConfig(**{**base, **kw})


def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path):
    whole = train(tiny(tmp_path / "whole"))
    # the same run "killed" after round 1 (a one-round run leaves the state of round 1), then resumed for two
    part = train(tiny(tmp_path / "part", mpc_rounds=1))
    assert torch.load(part / "resume.pt", weights_only=False)["round"] == 1
    resumed = train(tiny(tmp_path / "part", mpc_rounds=2, resume=True))
    a, b = Checkpoint.load(whole / "model.pt").state_dict, Checkpoint.load(resumed / "model.pt").state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = Segments.load(whole / "data.npz"), Segments.load(resumed / "data.npz")
    assert np.array_equal(sa.obs, sb.obs) and np.array_equal(sa.task_ids, sb.task_ids)
    curve = lambda run: json.loads((run / "metrics.json").read_text())["mpc_returns"]  # noqa: E731
    assert curve(whole) == curve(resumed) and [c["round"] for c in curve(resumed)] == [1, 2]


def test_resume_starts_fresh_without_a_state_and_refuses_other_settings(tmp_path):
    run = train(tiny(tmp_path / "run", mpc_rounds=1, resume=True))  # nothing to resume: a fresh run
    assert torch.load(run / "resume.pt", weights_only=False)["round"] == 1
    with pytest.raises(ValueError, match=r"settings differ from the run's own: mlp_width=16 \(run: 32\)"):
        train(tiny(tmp_path / "run", mlp_width=16, resume=True))
