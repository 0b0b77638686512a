"""`tools/member_spread.py` as a script, on a tiny half-cheetah ensemble run: it rolls every member, reports the
planner's quantity (the forward velocity) per horizon, and refuses what it cannot roll."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mbmrl.train import losses as L
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import TrainConfig
from mbmrl.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import member_spread  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*(Box observation space|different from the unwrapped)")]


@pytest.fixture(scope="module")
def cheetah_ensemble(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cheetah_ens")
    return train(TrainConfig(family="halfcheetah", out=str(tmp / "run"), n_tasks=3, episodes_per_task=1, iters=5,
                             batch_size=4, seq_len=40, hidden_size=8, feature_dim=9, mlp_width=16, ensemble=3,
                             bootstrap=True, oracle=False, progress=False, tensorboard=False))


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "member_spread.py"), *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_it_reports_every_horizon_for_both_beliefs(cheetah_ensemble, tmp_path):
    out = tmp_path / "spread.json"
    done = tool(str(cheetah_ensemble), "--segments", "20", "--start", "8", "--horizon", "30", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "3 members, 20 segments" in done.stdout
    table = json.loads(out.read_text())["table"]
    assert set(table) == {"none", "recurrent"}
    for rows in table.values():
        assert [r["horizon"] for r in rows] == [1, 5, 10, 20, 30]
        assert all(np.isfinite(r["r2"]) and r["error_rms"] > 0 and r["spread_rms"] > 0 for r in rows)


def test_the_table_is_the_members_rollouts_against_what_happened(cheetah_ensemble):
    """The rolled quantity is the known reward's observation term (obs[8], the forward velocity), summed; the
    error is the members' mean minus the recorded sum, the spread their standard deviation."""
    model = Checkpoint.load(cheetah_ensemble / "model.pt").model()
    d = np.load(cheetah_ensemble / "data.npz")
    t = lambda k: torch.as_tensor(d[k][:6]).float()  # noqa: E731
    b = L.Batch(t("obs"), t("actions"), t("next_obs"), t("rewards"), t("params"))
    weights = torch.zeros(17)
    weights[8] = 1.0
    table = member_spread.spread_table(model, b, 4, 10, weights)
    with torch.no_grad():
        sums = []
        for k in range(3):
            x, hp, v = b.obs[:, 4], model.member(k).fh(model.h0.expand(6, -1)), 0.0
            for j in range(10):
                x = model.step(x, b.actions[:, 4 + j], hp, model.W0, k)[0]
                v = v + x[:, 8]
            sums.append(v.numpy())
    sums = np.stack(sums)
    err = sums.mean(0) - d["next_obs"][:6, 4:14, 8].sum(1)
    row = table["none"][-1]
    assert row["horizon"] == 10
    np.testing.assert_allclose(row["error_rms"], np.sqrt((err**2).mean()), rtol=1e-4)
    np.testing.assert_allclose(row["spread_rms"], np.sqrt((sums.std(0) ** 2).mean()), rtol=1e-4)


@pytest.mark.parametrize("args, says", [
    (["nowhere"], "does not exist"),
    (["RUN", "--start", "30", "--horizon", "30"], "must fit the data's 40-step segments"),
    (["RUN", "--index", "17"], "outside the 17 observations"),
])
def test_it_refuses_what_it_cannot_roll(cheetah_ensemble, monkeypatch, args, says):
    argv = [str(cheetah_ensemble) if a == "RUN" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["member_spread.py", *argv])
    with pytest.raises(SystemExit, match=says):
        member_spread.main()
