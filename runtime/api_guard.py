"""HTTP schemas of the adaptation guard (`mbmrl.runtime.guard`): the `guard` settings of `POST /v1/sessions` and
what sessions report of it in their info and in every act/step reply."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .api_types import Strict, integer


class Errors(BaseModel):
    """Running errors of the two predictors (surprise units; null before any transition)."""

    adapted: float | None
    prior: float | None


class GuardInfo(BaseModel):
    """The adaptation guard: which model the session plans and predicts with, and why."""

    model: Literal["adapted", "prior"] = Field(description="what plans (and predictions of more than one step) "
                                               "use: the session's adapted belief and head, or the prior (h0, W0: "
                                               "mode none) while the adapted one predicts worse over the horizon")
    one_step_model: Literal["adapted", "prior"] = Field(description="the predictor one-step predictions weigh "
                                                        "more (the lower recent one-step error)")
    one_step_weight: float = Field(description="the adapted predictor's weight in one-step predictions (the "
                                   "prior's: 1 - it), from both predictors' recent one-step errors")
    scored: int = Field(description="transitions scored under both predictors")
    switches: int = Field(description="times the session changed model")
    one_step: Errors = Field(description="running one-step error of each predictor")
    multi_step: Errors = Field(description="running error of each predictor's own open-loop predictions over "
                                           "the last `config.horizon` steps of executed actions")
    config: dict[str, Any] = Field(description="the guard's settings (leave, hysteresis: error ratios adapted / "
                                               "prior)")


class GuardPatch(Strict):
    """Guard settings to change (omitted fields keep the defaults); `mbmrl.runtime.guard.GuardConfig`."""

    horizon: integer(1, 64) | None = Field(None, description="open-loop steps each scoring track runs")  # type: ignore[valid-type]
    forget: float | None = Field(None, ge=0, lt=1, description="weight of the past in the running errors")
    leave: float | None = Field(None, gt=0, le=100, description="fall back to the prior once the adapted "
                                "model's running error is above this fraction of the prior's")
    predict_forget: float | None = Field(None, ge=0, lt=1, description="weight of the past in the recent "
                                         "one-step errors that choose the model of one-step predictions")
    blend: float | None = Field(None, ge=0, le=16, description="power p of the inverse-error weights blending "
                                "one-step predictions (0: the predictor with the lower recent error alone)")
    hysteresis: float | None = Field(None, ge=0, lt=1, description="use the adapted model again only below "
                                     "leave x (1 - hysteresis) of the prior's error")
    min_observed: integer(0, 1_000_000) | None = Field(None, description="transitions scored before the "  # type: ignore[valid-type]
                                                      "adapted model may be used")
    plan_after: integer(0, 1_000_000) | None = Field(None, description="transitions scored before plans "  # type: ignore[valid-type]
                                                    "and multi-step predictions may use the adapted model")
