"""HTTP schemas of actuator-gain adaptation (`mbmrl.runtime.gain`): the `gain` settings of `POST /v1/sessions`
and what sessions report of it in their info."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .api_types import Strict, horizon_of, integer


class GainInfo(BaseModel):
    """The actuator gain a session runs its model at: the plant receives g x the model's action."""

    gain: float = Field(description="the current estimate g >= 1 (1 until enough transitions were seen)")
    kept: int = Field(description="transitions kept for the estimate")
    settings: dict[str, Any] = Field(description="the gain adaptation's settings (`GainConfig`)")


class GainPatch(Strict):
    """Gain settings to change (omitted fields keep the artifact's or the defaults); `GainConfig`. `dims` and
    `plan_horizon`, bounded by the artifact, are added per artifact (`gain_patch`)."""

    max_gain: float | None = Field(None, gt=1, le=100, description="largest gain considered")
    grid: integer(2, 256) | None = Field(None, description="gains tried, geometric from 1 to max_gain")  # type: ignore[valid-type]
    horizon: integer(1, 15) | None = Field(None, description="open-loop steps of each scored sequence")  # type: ignore[valid-type]
    window: integer(16, 1024) | None = Field(None, description="most recent transitions kept and scored")  # type: ignore[valid-type]
    every: integer(1, 1_000_000) | None = Field(None, description="re-estimate after this many transitions")  # type: ignore[valid-type]
    forget: float | None = Field(None, ge=0, lt=1, description="weight of the past in each gain's running error")
    plant_cost: bool | None = Field(None, description="plan paying the control cost of the plant's action g u")
    plan_above: float | None = Field(None, ge=1, le=100, description="the gain from which plan_horizon applies")


def gain_patch(obs_dim: int, horizons: list[int]) -> type[GainPatch]:
    """`GainPatch` for an artifact: `dims` entries in [0, obs_dim), `plan_horizon` 0 or an exported horizon, so every
    schema-valid patch is a valid one."""
    PlanHorizon = horizon_of([0, *horizons])  # noqa: N806

    class ArtifactGainPatch(GainPatch):
        dims: list[integer(0, obs_dim - 1)] | None = Field(  # type: ignore[valid-type]
            None, max_length=obs_dim, description="obs dims scored (empty: all)")
        plan_horizon: PlanHorizon | None = Field(  # type: ignore[valid-type]
            None, description="while the gain is at least plan_above, plan over this many steps if fewer (0: never)")

    return ArtifactGainPatch
