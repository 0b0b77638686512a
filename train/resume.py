"""Resuming a run between exploration rounds (`mbmrl train --resume`).

A protocol run is hours of collection on a small CPU: after every round RUN/resume.pt (model weights, the
round, the learning curve, the histories, every random state) and RUN/data.npz are written, so a killed run
started again with `--resume` continues from its last finished round and ends exactly as it would have
without the interruption. The settings must be the run's own; only these may differ (`mpc_rounds` extends a
finished run by more rounds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainConfig
from .data import Segments

MAY_DIFFER = ("resume", "mpc_rounds", "progress", "threads", "tensorboard", "log_every", "device", "collect_envs",
              "keep_rounds")
FILE = "resume.pt"


@dataclass
class RoundState:
    """Everything a run needs to continue after `round` exploration rounds."""

    round: int
    config: dict
    model: dict  # state_dict
    train_idx: np.ndarray
    val_idx: np.ndarray
    stats: dict[str, np.ndarray]  # the normalization the oracle is built with at the end
    curve: list[dict]
    histories: dict[str, list[dict]]
    rng: Mapping[str, Any]  # numpy bit generator state
    torch_rng: torch.Tensor
    optimizer: dict | None = None  # Adam's state_dict under --keep-optimizer


def save_round(out: Path, state: RoundState, segs: Segments) -> None:
    """Write RUN/data.npz, then RUN/resume.pt (replaced atomically: a kill mid-write leaves the last one)."""
    segs.save(out / "data.npz")
    tmp = out / (FILE + ".tmp")
    torch.save(dataclasses.asdict(state), tmp)
    tmp.replace(out / FILE)


def load_round(out: Path, cfg: TrainConfig) -> tuple[RoundState, Segments] | None:
    """The last finished round of the run in `out`, or None when it has none; a ValueError naming the settings
    that differ from the run's own."""
    path = out / FILE
    if not path.is_file():
        return None
    state = RoundState(**torch.load(path, map_location="cpu", weights_only=False))
    now = dataclasses.asdict(cfg)
    differ = sorted(k for k, v in state.config.items() if k not in MAY_DIFFER and now.get(k) != v)
    if differ:
        raise ValueError(f"--resume {out}: settings differ from the run's own: "
                         + ", ".join(f"{k}={now.get(k)!r} (run: {state.config[k]!r})" for k in differ)
                         + "; resume with the run's settings, or write to a new --out")
    return state, Segments.load(out / "data.npz")
