"""A `Session`'s adaptation state as named arrays, and back: what snapshots, the journal and all-or-nothing
steps save and restore."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from .gain import gain_arrays, load_gain
from .guard import guard_arrays, load_guard

Session = Any  # a `mbmrl.runtime.session.Session` (not imported: the session imports this module)


def session_arrays(s: Session) -> dict[str, np.ndarray]:
    """Everything needed to restore `s` exactly (call with its lock held)."""
    # states are immutable (a fold returns a new one), so their arrays are shared, not copied
    head = {f"head.{f.name}": np.asarray(getattr(s.state, f.name)) for f in dataclasses.fields(s.state)}
    return {"h": s.h, "plan": s.plan, "n_observed": np.array(s.n_observed),
            "rng": np.frombuffer(json.dumps(s.rng.bit_generator.state).encode(), dtype=np.uint8),
            **s.tracking.arrays(), **guard_arrays(s.guard), **gain_arrays(s.gain), **head}


def restore_arrays(s: Session, state: dict[str, np.ndarray]) -> None:
    """Put back what `session_arrays` saved (call with the lock held; a KeyError names a missing array)."""
    head = {f.name: state[f"head.{f.name}"] for f in dataclasses.fields(s.adapter.state_type)}
    s.state = s.adapter.state_type(**head)
    s.h, s.plan = state["h"], state["plan"]
    s.n_observed = int(state["n_observed"])
    s.rng.bit_generator.state = json.loads(bytes(state["rng"]).decode())
    s.tracking = s.tracking.load(state)
    s.guard = load_guard(state, s.rt.obs_dim)
    s.gain = load_gain(state, s.gain_config)
