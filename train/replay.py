"""`mbmrl replay RECORDINGS --artifact A [--mode M]`: re-run recorded sessions through any artifact and mode.

Offline A/B of models on real logs: the recorded transitions are observed in order by a fresh session of
the chosen artifact and mode, which reports, over time, the surprise of each transition (the one-step error
before folding it, as a served session reports it) and the H-step open-loop error of its predictions of the
recorded actions' outcomes (made before seeing them). With the recording's own artifact and mode, the
surprises equal the ones the live session reported (`max_surprise_diff`).

Writes OUT/replay.json and OUT/replay.png; needs only the runtime (and matplotlib for the plot).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from mbmrl.runtime.loader import load
from mbmrl.runtime.recording import read_recording
from mbmrl.runtime.session import Session
from mbmrl.runtime.validation import continues


@dataclass(frozen=True)
class ReplayConfig:
    """`mbmrl replay` settings."""

    recordings: str = field(default="", metadata={
        "help": "MCAP files or directories of them, comma-separated (files of one session in name order)"})
    artifact: str = field(default="artifact", metadata={"help": "artifact to replay through"})
    mode: str = field(default="", metadata={"help": "adaptation mode (default: the artifact's)"})
    horizon: int = field(default=15, metadata={"help": "H of the open-loop prediction error"})
    guard: bool = field(default=True, metadata={
        "help": "predict with the model a served session would plan with (the adaptation guard's choice, "
                "docs/guard.md); --no-guard: always the adapted model"})
    out: str = field(default="replay", metadata={"help": "output directory (replay.json, replay.png)"})


def recording_files(spec: str) -> list[Path]:
    """The .mcap files a `recordings` spec names, in order; a clear error when there are none."""
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        path = Path(part)
        files += sorted(path.glob("*.mcap")) if path.is_dir() else [path]
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        raise FileNotFoundError(f"no MCAP recording at {missing or spec!r}: pass files or directories written by "
                                "`mbmrl serve --record DIR`")
    return files


def follows(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """(T-1,): transition t+1 starts where transition t ended (no reset or gap between them): the runtime's
    `continues`, which the adaptation guard uses for the same question."""
    return continues(next_obs[:-1], obs[1:])


def sessions_of(files: list[Path]) -> dict[str, list[Path]]:
    """Recording files grouped by session (SESSION-NNNN.mcap), each group in file order."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.name.rsplit("-", 1)[0], []).append(f)
    return groups


def replay(cfg: ReplayConfig) -> dict:
    """Replay, write replay.json and replay.png, print a summary; returns the summary."""
    rt = load(cfg.artifact)
    rows: list[dict] = []
    mode = ""
    for files in sessions_of(recording_files(cfg.recordings)).values():
        trans = [m for topic, _, m in read_recording(list(files)) if topic == "/mbmrl/transition"]
        if trans:
            session = Session(rt, cfg.mode or None, seed=0, guard=None if cfg.guard else False)  # from the prior
            mode = session.mode
            rows += _replay_session(session, trans, cfg.horizon)
    if not rows:
        raise ValueError(f"{cfg.recordings}: the recording holds no transitions")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    recorded = [(r["surprise"], r["recorded_surprise"]) for r in rows if r["recorded_surprise"] is not None]
    h_errors = [r["h_step_error"] for r in rows if r["h_step_error"] is not None]
    summary = {"transitions": len(rows), "mode": mode, "artifact": str(cfg.artifact),
               "mean_surprise": float(np.mean([r["surprise"] for r in rows])),
               "mean_h_step_error": float(np.mean(h_errors)) if h_errors else None, "horizon": cfg.horizon,
               "max_surprise_diff": max((abs(a - b) for a, b in recorded), default=None), "config": asdict(cfg)}
    (out / "replay.json").write_text(json.dumps({**summary, "per_transition": rows}, indent=1))
    _plot(rows, cfg, out / "replay.png")
    print(f"replayed {len(rows)} transitions through {cfg.artifact} ({mode}): mean surprise "
          f"{summary['mean_surprise']:.4f}, mean {cfg.horizon}-step open-loop error "
          + ("-" if summary["mean_h_step_error"] is None else f"{summary['mean_h_step_error']:.4f}")
          + ("" if summary["max_surprise_diff"] is None else
             f"; largest difference from the recorded surprises {summary['max_surprise_diff']:.3g}")
          + f"\nwrote {out / 'replay.json'} and {out / 'replay.png'}")
    return summary


def _replay_session(session: Session, trans: list[dict], horizon: int) -> list[dict]:
    """Observe one recorded session's transitions in order; per transition its surprise, the recorded one, and
    the H-step open-loop error of the prediction made before it (where H consecutive transitions follow)."""
    rt = session.rt
    obs = np.asarray([t["obs"] for t in trans], np.float32)  # (T, O)
    acts = np.asarray([t["action"] for t in trans], np.float32)  # (T, A)
    nxt = np.asarray([t["next_obs"] for t in trans], np.float32)  # (T, O)
    joined = np.r_[follows(obs, nxt), False]  # (T,)
    rows = []
    for i, t in enumerate(trans):
        h_err, guard = None, session.info()["guard"]
        if i + horizon <= len(trans) and joined[i : i + horizon - 1].all():
            pred, _ = session.predict(obs[i], acts[i : i + horizon])  # (H, O), before seeing the outcomes
            h_err = float(np.mean(((pred - nxt[i : i + horizon]) / rt.norm.obs_std) ** 2))
        surprise = session.observe(obs[i], acts[i], nxt[i], t.get("reward"))
        rows.append({"surprise": surprise, "recorded_surprise": t.get("surprise"), "h_step_error": h_err,
                     "model": guard["model"] if guard else "adapted"})  # what the H-step prediction used
    return rows


def _plot(rows: list[dict], cfg: ReplayConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([r["surprise"] for r in rows], lw=0.8, label="one-step error (surprise)")
    h = [np.nan if r["h_step_error"] is None else r["h_step_error"] for r in rows]
    ax.plot(h, lw=0.8, label=f"{cfg.horizon}-step open-loop error")
    ax.set(yscale="log", xlabel="transition", ylabel="normalized squared error",
           title=f"replay through {Path(cfg.artifact).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
