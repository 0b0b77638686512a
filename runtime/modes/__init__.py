"""Adaptation modes as objects with explicit state (DESIGN §3).

A mode says how a session's belief moves with each observed transition: whether the encoder folds it
into h (`adapts_belief`), and how the linear head W adapts on the transition's features and targets
(`init() -> state`, `fold(state, phi, y) -> state`, `head(state) -> W`, `variance(state, phi)`). States
are frozen dataclasses of arrays, so a session's `state_dict` is their fields. `mbmrl.train.losses`
holds the torch twins under the same names; `tests/export/test_adapt_parity.py` checks each pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from ..artifact import Manifest, Params
from .bayes import BayesHead, BayesState
from .gradient import GradientHead, GradientState
from .prior import NoState, PriorHead


class Mode(Protocol):
    """One adaptation mode; all state lives in what `init` and `fold` return."""

    @property
    def name(self) -> str:
        """The mode's name in the manifest and the HTTP API."""
        ...

    @property
    def adapts_belief(self) -> bool:
        """Fold each transition into h with the encoder (ReBAL-like)."""
        ...

    @property
    def state_type(self) -> type:
        """The dataclass `init` and `fold` return (a session restores it from its fields)."""
        ...

    def initial_belief(self, h0: np.ndarray, task_params: dict | None) -> np.ndarray:
        """The belief h before any transition (hidden,)."""
        ...

    def init(self) -> Any:
        """Head state before any transition."""
        ...

    def fold(self, state: Any, phi: np.ndarray, y: np.ndarray) -> Any:
        """Head state after one transition with features phi (D,) and normalized target y (P,)."""
        ...

    def head(self, state: Any) -> np.ndarray:
        """Head weights W (D, P) for prediction and planning."""
        ...

    def variance(self, state: Any, phi: np.ndarray) -> np.ndarray | None:
        """Predictive variance (B, P) in normalized units at features phi (B, D); None if the mode has none."""
        ...

    def risk(self, state: Any) -> np.ndarray | None:
        """Epistemic covariance (D, D) of a normalized delta, for the planner's risk term; None if unknown."""
        ...


def make_mode(name: str, manifest: Manifest, params: Params, window: int | None = None) -> Mode:
    """The mode `name` with the artifact's settings, or another `window` (transitions a gradient or bayes head
    adapts on: longer for steadier conditions, shorter to follow faster change; modes without a window have
    nothing to change); a ValueError lists the modes on offer or names a bad window."""
    if name not in manifest.modes:
        raise ValueError(f"mode {name!r} is not offered by this artifact; expected one of {sorted(manifest.modes)}")
    spec = manifest.modes[name]
    if window is not None and window < 1:
        raise ValueError(f"window must be at least 1 transition, got {window}")
    if window is not None and spec.window is not None:
        spec = dataclasses.replace(spec, window=int(window))
    if name in ("none", "recurrent"):
        return PriorHead(name, params.W0, adapts_belief=name == "recurrent")
    if name == "oracle":
        if manifest.oracle is None:
            raise ValueError("mode 'oracle' needs an oracle artifact (its manifest has no oracle section)")
        return PriorHead(name, params.W0, adapts_belief=False, oracle=manifest.oracle)
    if name == "gradient":
        assert params.step_size is not None and spec.steps is not None and spec.window is not None
        return GradientHead(params.W0, params.step_size, spec.steps, spec.window)
    assert params.P0 is not None and params.noise_var is not None and spec.window is not None
    return BayesHead(params.W0, params.P0, params.noise_var, spec.window, spec.noise_prior or 0.0)


__all__ = ["BayesHead", "BayesState", "GradientHead", "GradientState", "Mode", "NoState", "PriorHead", "make_mode"]
