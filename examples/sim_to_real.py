"""The sim-to-real loop on a "real" pendulum the simulator's family does not model: record, fine-tune, replay.

The robot here is Gymnasium's pendulum with two effects the `pendulum` family (mass and length per task) has
never seen: viscous friction on the joint and a motor that lags its command (first-order). The served
artifact flies it while `mbmrl serve --record` writes every session; some recordings fine-tune the model
(`mbmrl train --init RUN --data RECORDINGS`), the others are held out and replayed through the old and the
new artifact (`mbmrl replay`): prediction error before and after.

    python examples/sim_to_real.py --run quickstart/run --artifact quickstart/artifact --out s2r
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from mbmrl.export.config import ExportConfig
from mbmrl.export.onnx_export import export_run
from mbmrl.runtime.client import Client
from mbmrl.runtime.local_server import local_server
from mbmrl.train.config import TrainConfig
from mbmrl.train.episode import run_episode
from mbmrl.train.evaluation.evaluate import stepping
from mbmrl.train.families import get_family
from mbmrl.train.replay import ReplayConfig, replay
from mbmrl.train.trainer import train

FRICTION = 1.5  # 1/s: the joint loses this share of its speed per second
LAG = 0.35  # the motor moves this share of the way to its command each 0.05 s step


class RealPendulum(gym.Wrapper):
    """A family pendulum plus joint friction and a lagging motor (outside what the family varies)."""

    def reset(self, **kw):
        """Motor at rest."""
        self.torque = 0.0
        return self.env.reset(**kw)

    def step(self, action):
        """Lag the command, step, then let friction take its share of the speed."""
        self.torque += LAG * (float(np.asarray(action).reshape(-1)[0]) - self.torque)
        _, reward, term, trunc, info = self.env.step(np.array([self.torque], np.float32))
        pend = self.env.unwrapped
        th, thdot = pend.state
        pend.state = np.array([th, thdot * (1.0 - FRICTION * pend.dt)])
        obs = np.array([np.cos(th), np.sin(th), pend.state[1]], np.float32)
        return obs, reward, term, trunc, info


def fly(url: str, tasks: list[dict], mode: str, seed: int) -> list[str]:
    """One recorded session per task on the real pendulum; returns the session ids."""
    family, ids = get_family("pendulum"), []
    for i, params in enumerate(tasks):
        env = RealPendulum(family.make_env(params, family.eval_start))
        session = Client(url).new_session(mode=mode, seed=seed + i)
        act, observe = stepping(session)
        run_episode(env, act, 200, seed=seed + i, observe=observe)
        ids.append(session.session_id)
        session.close()  # ends the recording's file too
    return ids


def main() -> None:
    """Record, fine-tune, replay; writes OUT/summary.json."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the run the artifact was exported from (for --init)")
    p.add_argument("--artifact", required=True)
    p.add_argument("--out", default="s2r")
    p.add_argument("--mode", default="recurrent")
    p.add_argument("--sessions", type=int, default=12, help="recorded sessions (a quarter held out)")
    p.add_argument("--iters", type=int, default=600, help="fine-tuning iterations")
    args = p.parse_args()
    out = Path(args.out)
    rng = np.random.default_rng(0)
    tasks = [{"mass": float(rng.uniform(0.8, 1.2)), "length": float(rng.uniform(0.8, 1.2))}
             for _ in range(args.sessions)]
    rec = out / "recordings"
    with local_server(args.artifact, "--record", str(rec)) as url:
        ids = fly(url, tasks, args.mode, seed=100)
    n_held = max(1, args.sessions // 4)
    held, used = ids[:n_held], ids[n_held:]
    paths = lambda ids: ",".join(str(f) for i in ids for f in sorted(rec.glob(f"{i}-*.mcap")))  # noqa: E731
    run = train(TrainConfig(out=str(out / "ft_run"), init=args.run, data=paths(used), iters=args.iters,
                            progress=False))
    new_artifact = export_run(ExportConfig(run=str(run), out=str(out / "ft_artifact"), horizons=(15,)))
    summary: dict = {"friction": FRICTION, "lag": LAG, "sessions": args.sessions, "held_out": len(held),
                     "fine_tune_iters": args.iters, "mode": args.mode}
    for label, art in (("before", args.artifact), ("after", str(new_artifact))):
        r = replay(ReplayConfig(recordings=paths(held), artifact=art, mode=args.mode, out=str(out / f"replay_{label}")))
        summary[label] = {"mean_one_step": r["mean_surprise"], "mean_h_step": r["mean_h_step_error"]}
    summary["one_step_ratio"] = summary["after"]["mean_one_step"] / summary["before"]["mean_one_step"]
    summary["h_step_ratio"] = summary["after"]["mean_h_step"] / summary["before"]["mean_h_step"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
