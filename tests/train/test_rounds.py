"""`mbmrl train --mpc-lr`, `--keep-optimizer` and `--keep-rounds`: each exploration round's fit at its own
learning rate, with Adam's moments carried from round to round (through `--resume` too), and the model after
every round kept for evaluation along the learning curve."""

import torch
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import TrainConfig
from mbmrl.train.trainer import train


def tiny(out, **kw) -> TrainConfig:
    base = dict(family="pendulum", out=str(out), n_tasks=2, episodes_per_task=1, seq_len=50, mpc_rounds=2,
                mpc_tasks=1, iters=5, mpc_iters=5, hidden_size=8, feature_dim=8, mlp_width=32, batch_size=8,
                oracle=False, progress=False, tensorboard=False, keep_rounds=True)
    return TrainConfig(**{**base, **kw})


def weights(path) -> dict[str, torch.Tensor]:
    return Checkpoint.load(path).state_dict


def moved(a: dict, b: dict) -> float:
    """How far the weights moved between two checkpoints (L2 over every parameter)."""
    return float(sum(((a[k] - b[k]).float() ** 2).sum() for k in a) ** 0.5)


def test_keep_rounds_saves_each_rounds_model_and_the_last_is_the_runs_model(tmp_path):
    run = train(tiny(tmp_path / "run"))
    assert sorted(p.name for p in (run / "rounds").iterdir()) == ["round01.pt", "round02.pt"]
    final, r1, r2 = weights(run / "model.pt"), weights(run / "rounds/round01.pt"), weights(run / "rounds/round02.pt")
    assert all(torch.equal(final[k], r2[k]) for k in final)
    assert moved(r1, r2) > 0  # round 2 trained on
    assert Checkpoint.load(run / "rounds/round01.pt").family == "pendulum"  # a checkpoint `mbmrl export` takes
    assert not (train(tiny(tmp_path / "off", keep_rounds=False)) / "rounds").exists()


def test_mpc_lr_sets_the_rounds_learning_rate_and_zero_means_lr(tmp_path):
    default = train(tiny(tmp_path / "default"))
    same = train(tiny(tmp_path / "same", mpc_lr=2e-3))  # --lr's default, spelled out
    slow = train(tiny(tmp_path / "slow", mpc_lr=1e-5))
    a, b = weights(default / "model.pt"), weights(same / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the rounds' fits move a model at 1e-5 far less than at 2e-3 (the first fit, at --lr, is the same)
    step = lambda run: moved(weights(run / "rounds/round01.pt"), weights(run / "rounds/round02.pt"))  # noqa: E731
    assert step(slow) < 0.05 * step(default)


def test_keep_optimizer_carries_adam_across_rounds_and_through_a_resume(tmp_path):
    fresh = weights(train(tiny(tmp_path / "fresh")) / "model.pt")
    whole = weights(train(tiny(tmp_path / "whole", keep_optimizer=True)) / "model.pt")
    assert any(not torch.equal(fresh[k], whole[k]) for k in fresh)  # the rounds started from other moments
    train(tiny(tmp_path / "part", keep_optimizer=True, mpc_rounds=1))  # "killed" after round 1
    resumed = weights(train(tiny(tmp_path / "part", keep_optimizer=True, resume=True)) / "model.pt")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)  # Adam's state went through resume.pt
