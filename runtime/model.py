"""`Runtime`: an artifact's contract (`Manifest`) and arrays (`Params`) bound to an engine (`Dynamics`).

What a `Session` runs on. `mbmrl.runtime.load(ARTIFACT)` builds one over ONNX Runtime;
`mbmrl.train.torch_dynamics.torch_runtime(...)` builds one over the torch model it was exported from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .artifact import Manifest, Normalization, Params
from .cost import Cost
from .dynamics import Dynamics
from .planner import PlannerConfig
from .reference import ReferenceLayout


@dataclass(frozen=True)
class Runtime:
    """A loaded model: what it is (manifest), what it learned (params), and how to run it (dynamics)."""

    manifest: Manifest
    params: Params
    dynamics: Dynamics
    path: Path | None = None
    """The artifact directory it was loaded from (None for an in-memory torch model)."""
    default_cost: Cost = field(init=False)
    default_planner: PlannerConfig = field(init=False)

    def __post_init__(self):
        m = self.manifest
        object.__setattr__(self, "default_cost", Cost.from_dict(m.default_cost, m.obs_dim, m.action_dim))
        object.__setattr__(self, "default_planner", PlannerConfig(**m.default_planner))

    @property
    def obs_dim(self) -> int:
        """Observation size O."""
        return self.manifest.obs_dim

    @property
    def action_dim(self) -> int:
        """Action size A."""
        return self.manifest.action_dim

    @property
    def feature_dim(self) -> int:
        """Feature size D (the head is D x P)."""
        return self.manifest.feature_dim

    @property
    def action_low(self) -> np.ndarray:
        """Lower action bound (A,)."""
        return np.asarray(self.manifest.action_low, dtype=np.float32)

    @property
    def action_high(self) -> np.ndarray:
        """Upper action bound (A,)."""
        return np.asarray(self.manifest.action_high, dtype=np.float32)

    @property
    def norm(self) -> Normalization:
        """Normalization statistics."""
        return self.manifest.normalization

    @property
    def modes(self) -> list[str]:
        """Adaptation modes this model offers."""
        return list(self.manifest.modes)

    @property
    def default_mode(self) -> str:
        """The mode a session gets when it names none."""
        return self.manifest.default_mode

    @property
    def horizons(self) -> list[int] | None:
        """Planning horizons the engine can run (None: any)."""
        return self.dynamics.horizons

    @property
    def h0(self) -> np.ndarray:
        """Prior belief (hidden,)."""
        return self.params.h0

    @property
    def W0(self) -> np.ndarray:
        """Prior head (D, P)."""
        return self.params.W0

    @cached_property
    def reference_layout(self) -> ReferenceLayout | None:
        """Which obs entries a session's reference trajectory feeds (None: this family declares no reference)."""
        d = self.manifest.reference
        return ReferenceLayout.from_dict(d) if d else None

    def check_horizon(self, horizon: int) -> None:
        """A ValueError when the engine cannot plan over `horizon` steps."""
        if self.horizons is not None and horizon not in self.horizons:
            raise ValueError(f"planner.horizon={horizon} not exported; available: {self.horizons}")
