"""HTTP API schemas: responses, error bodies, and strict request models built per artifact.

Every vector in a request has the artifact's exact dimension, so the OpenAPI schema at /docs
tells a client precisely what to send; models are strict (no `true` or `"1.5"` for a float).
"""

from typing import Annotated, Any, Literal, NamedTuple

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Discriminator, FailFast, Field, Tag, field_validator
from pydantic.functional_validators import BeforeValidator
from pydantic_core import PydanticCustomError

from .api_errors import ErrorMessage, ValidationErrorMessage
from .api_gain import GainInfo, gain_patch
from .api_guard import GuardInfo, GuardPatch
from .api_reference import ReferenceBody
from .api_types import F32, F32_MAX, Strict, at_most, horizon_of, integer, reward_bounds, state_bounds, vector
from .normalization import Normalization
from .types import ActResult

MAX_TARGET_STEPS = 10_000  # rows of a per-step cost.target reference
MAX_ERRORS = 20  # a 422 lists at most this many problems (and counts them all in error_count)


Responses = dict[int | str, dict[str, Any]]


def _err(description: str, model: type[BaseModel] = ErrorMessage) -> dict[str, Any]:
    return {"model": model, "description": description}


AUTH: Responses = {401: _err("Missing or wrong bearer token (only when the server runs with a token)")}
LIMITS: Responses = {  # any request: the body guard runs before routing
    408: _err("The request body did not arrive within the server's --body-timeout (connection closed)"),
    413: _err("Request body larger than the server's --max-body-bytes (connection closed)"),
}
INVALID: Responses = {422: _err("Invalid input: wrong field, type, dimension, a number that is not finite in float32, "
                     "a body that is not UTF-8 JSON, or a planner over the server's --max-plan-work",
                     ValidationErrorMessage)}
BODY: Responses = {**LIMITS, **INVALID}
NOT_FOUND: Responses = {404: _err("No session with this id"), **INVALID}  # 422: an id over 64 characters
NO_FINITE = "the model has no finite prediction from this state (reset the session or check the observation)"
BUSY: Responses = {503: _err("Every planning slot stayed busy (--plan-slots: retry after Retry-After seconds), "
                             f"or {NO_FINITE}")}
DIVERGED: Responses = {503: _err(NO_FINITE[0].upper() + NO_FINITE[1:])}
SessionId = Annotated[str, Path(max_length=64, description="as returned by POST /v1/sessions")]


class Health(BaseModel):
    """GET /healthz."""

    status: str


class ModelInfo(BaseModel):
    """GET /v1/model: dimensions, names, bounds, modes and defaults of the served artifact."""

    obs_dim: int
    action_dim: int
    obs_names: list[str]
    action_names: list[str]
    action_low: list[float]
    action_high: list[float]
    hidden_size: int
    modes: dict[str, dict[str, Any]]
    default_mode: str
    default_cost: dict[str, Any]
    default_planner: dict[str, Any]
    default_guard: dict[str, Any] = Field(default_factory=dict, description="guard settings sessions start from")
    default_gain: dict[str, Any] = Field(default_factory=dict, description="actuator-gain settings sessions start "
                                         "from (empty: off)")
    horizons: list[int]
    precision: str = Field("fp32", description="rollout graphs in use: fp32, or int8 with `int8`'s measured error")
    int8: dict[str, Any] | None = None
    family: str | None
    format_version: int


class SessionCreated(BaseModel):
    """POST /v1/sessions: the new session's id and mode."""

    session_id: str
    mode: str


class SessionList(BaseModel):
    """GET /v1/sessions: ids of the live sessions."""

    sessions: list[str]


class SessionInfo(BaseModel):
    """GET /v1/sessions/{id}: mode, counters, planner, cost and how far the belief moved."""

    session_id: str
    mode: str
    n_observed: int
    planner: dict[str, Any]
    cost: dict[str, Any]
    h_norm: float
    w_shift: float
    window: int | None = Field(None, description="transitions the head adapts on (gradient and bayes modes)")
    reference: dict[str, Any] | None = Field(None, description="the held reference trajectory (a points reference: "
                                             "its extent), or null")
    reference_time: float = Field(0.0, description="s on the reference's clock of the next act/step")
    guard: GuardInfo | None = Field(None, description="the adaptation guard (null: none; modes none and oracle)")
    gain: GainInfo | None = Field(None, description="actuator-gain adaptation (null: off)")


class Observed(BaseModel):
    """POST observe: transitions folded so far and the surprise of each new one."""

    n_observed: int
    surprise: list[float | None] = Field(description="per transition; null if it overflowed (non-finite)")


class Acted(BaseModel):
    """POST act: the action to apply now, the plan, its predicted states and cost."""

    action: list[float]
    plan: list[list[float]]
    predicted_obs: list[list[float]] = Field(description="the plan's states: the planner's weighted average of "
                                             "its sampled trajectories (POST predict rolls the plan alone)")
    expected_cost: float | None = Field(description="null if it overflowed (non-finite)")
    fallback: bool = Field(False, description="true if planning gave non-finite values and the session "
                                              "answered with its last finite plan")
    samples_used: int = Field(0, description="sequences sampled per iteration (below planner.samples under a "
                                             "deadline)")
    plan_ms: float = Field(0.0, description="wall time of the plan on the server, ms")
    guard: GuardInfo | None = Field(None, description="the model this plan used and the guard's running errors "
                                    "(null: no guard)")


def acted(r: ActResult) -> dict:
    """The JSON of an act result (the `Acted` schema)."""
    return {"action": r.action.tolist(), "plan": r.plan.tolist(), "predicted_obs": r.predicted_obs.tolist(),
            "expected_cost": r.expected_cost, "fallback": r.fallback, "samples_used": r.samples_used,
            "plan_ms": r.plan_ms, "guard": r.guard}


class Stepped(Acted):
    """POST step: the act reply, plus the folded transition's surprise (null on a first step) and the count."""

    surprise: float | None
    n_observed: int


class Predicted(BaseModel):
    """POST predict: open-loop predicted observations (and variance where the mode has one)."""

    predicted_obs: list[list[float]]
    predicted_var: list[list[float]] | None


# ------------------------------------------------------------------------------------------ request models
class RequestModels(NamedTuple):
    """The request schemas of one artifact (dimensions, modes and horizons built in)."""

    CreateSession: type[Strict]
    ObserveRequest: type[Strict]
    ActRequest: type[Strict]
    PredictRequest: type[Strict]
    StepRequest: type[Strict]


def build_request_models(
    obs_dim: int, action_dim: int, modes: list[str], horizons: list[int], norm: Normalization | None = None,
    max_plan_work: int | None = None, references: bool = False, reward_sources: tuple[str, ...] = ("learned",),
) -> RequestModels:
    """Strict request bodies with this artifact's dimensions, modes and horizons; with `norm`, observations
    and rewards are bounded to what the runtime accepts (`api_types.state_bounds`); `max_plan_work` is stated
    in the planner's schema (the server checks it: JSON Schema cannot state a product of fields); with
    `references`, sessions can be created holding a reference trajectory; `reward_sources` those a cost may name."""
    bounds = state_bounds(norm) if norm else ([-F32_MAX] * obs_dim, [F32_MAX] * obs_dim)
    Obs = vector(obs_dim, "obs_dim", bounds=bounds)
    Action = vector(action_dim, "action_dim")
    Weight = Annotated[float, Field(ge=0, le=1e6)]
    Reward = Annotated[float, Field(ge=reward_bounds(norm)[0], le=reward_bounds(norm)[1])] if norm else F32
    Horizon = horizon_of(horizons)
    Target = Annotated[
        Annotated[Obs, Tag("vector")] | Annotated[list[Obs], Field(min_length=1, max_length=MAX_TARGET_STEPS),  # type: ignore[valid-type]
                                                  Tag("rows")],
        Discriminator(lambda v: "rows" if isinstance(v, list) and v and isinstance(v[0], list) else "vector"),
    ]

    class PlannerPatch(Strict):
        """Planner fields to override; omitted (or null) fields keep the session's value. The effective planner
        must have samples x iterations x horizon <= x-max-plan-work (else 422, type "plan_work")."""

        model_config = ConfigDict(json_schema_extra={"x-max-plan-work": max_plan_work} if max_plan_work else None)

        method: Literal["mppi", "cem"] | None = None
        horizon: Horizon | None = None  # type: ignore[valid-type]
        samples: integer(1, 8192) | None = None  # type: ignore[valid-type]
        iterations: integer(1, 20) | None = None  # type: ignore[valid-type]
        temperature: float | None = Field(None, ge=1e-3, le=1e6)  # smaller ones underflow the MPPI weights
        noise_scale: float | None = Field(None, ge=1e-3, le=10)
        elite_frac: float | None = Field(None, gt=0, le=1)
        noise_beta: float | None = Field(None, ge=0, le=4, description="noise colour: 0 white, 2 smooth (iCEM)")
        momentum: float | None = Field(None, ge=0, lt=1, description="CEM: share of the old mean and variance kept")
        warm_tail: Literal["repeat", "neutral"] | None = Field(None, description="the warm start's new last step: "
                                                               "repeat the last action, or the bounds' middle")
        truncate: bool | None = Field(None, description="PETS's sampling: std capped by the distance to the bounds, "
                                      "noise truncated at 2 std (no clipped samples)")
        deadline_ms: float | None = Field(None, ge=0, le=60_000, description="> 0: fewer samples if needed to "
                                          "plan within this many ms on the server's CPU; 0: no deadline")

    class CostPatch(Strict):
        """Cost fields to override; `target` is one obs vector or a reference of H of them."""

        target: Target | None = Field(  # type: ignore[valid-type]
            None, description=f"({obs_dim},) or (H, {obs_dim}) with 1 <= H <= {MAX_TARGET_STEPS}"
        )
        q: vector(obs_dim, "obs_dim", Weight) | None = None  # type: ignore[valid-type]
        r: vector(action_dim, "action_dim", Weight) | None = None  # type: ignore[valid-type]
        terminal_weight: float | None = Field(None, ge=0, le=1e6)
        reward_weight: float | None = Field(None, ge=-1e6, le=1e6)
        uncertainty_weight: float | None = Field(None, ge=0, le=1e6)
        linear: vector(obs_dim, "obs_dim", Annotated[float, Field(ge=-1e6, le=1e6)]) | None = None  # type: ignore[valid-type]
        reward_source: Literal[reward_sources] | None = Field(  # type: ignore[valid-type]
            None, description="'known' (where the artifact declares default_cost.reward): plan with that reward")

        @field_validator("target", mode="before")
        @classmethod
        def _target_shape(cls, v):  # before item validation: cheap, and one clear message
            rows = v if isinstance(v, list) and v and isinstance(v[0], list) else [v]
            if v is not None and not (
                1 <= len(rows) <= MAX_TARGET_STEPS and all(isinstance(r, list) and len(r) == obs_dim for r in rows)
            ):
                raise PydanticCustomError("wrong_shape", "expected shape ({d},) or (H, {d}) with 1 <= H <= {h}",
                                          {"d": obs_dim, "h": MAX_TARGET_STEPS})
            if v is not None and not all(type(x) in (int, float) and a <= x <= b
                                         for row in rows for x, a, b in zip(row, *bounds, strict=True)):
                raise PydanticCustomError("out_of_range", "every entry should be a number within the obs bounds "
                                          "(prefixItems in the schema: 1e4 training standard deviations)")
            return v  # (up to 10k rows: one error here rather than one per entry below)

    GainSettings = gain_patch(obs_dim, horizons)

    class CreateSession(Strict):
        mode: Literal[tuple(modes)] | None = Field(None, description="null: the artifact's default mode")  # type: ignore[valid-type]
        planner: PlannerPatch | None = None
        cost: CostPatch | None = None
        seed: integer(0, 2**53 - 1) | None = None  # type: ignore[valid-type]
        task_params: Annotated[dict[str, F32], BeforeValidator(at_most(64)),
                               Field(json_schema_extra={"maxProperties": 64})] | None = None
        window: integer(1, 4096) | None = Field(None, description="gradient and bayes modes: adapt on this many "  # type: ignore[valid-type]
                                                "last transitions (null: the artifact's; modes without a window "
                                                "have none to change: their info says window null)")
        guard: bool | GuardPatch | None = Field(None, description="adaptive modes: plan with the adapted model "
                                                "only while it predicts better than the prior (null or true: on, "
                                                "default settings; false: off; an object: settings)")
        gain: bool | GainSettings | None = Field(None, description="actuator-gain adaptation (null: the artifact's "  # type: ignore[valid-type]
                                                 "default_gain; true: on; false: off; an object: settings)")

    if references:  # only where the family says which obs entries a reference feeds
        class CreateTrackingSession(CreateSession):
            reference: ReferenceBody | None = Field(None, description="a reference trajectory to follow from "  # type: ignore[valid-type]
                                                    "the first act (also PUT /v1/sessions/{id}/reference)")

        CreateSession = CreateTrackingSession  # type: ignore[misc,assignment]

    class Transition(Strict):
        obs: Obs  # type: ignore[valid-type]
        action: Action  # type: ignore[valid-type]
        next_obs: Obs  # type: ignore[valid-type]
        reward: Reward | None = None  # type: ignore[valid-type]

    class ObserveRequest(Strict):
        transitions: Annotated[list[Transition], FailFast()] = Field(min_length=1, max_length=1000)

    class ActRequest(Strict):
        obs: Obs  # type: ignore[valid-type]
        cost: CostPatch | None = None
        planner: PlannerPatch | None = None
        time: float | None = Field(None, ge=-1e9, le=1e9, description="s on the session's reference clock at "
                                   "`obs` (null: one control period after the last act's)")

    class PredictRequest(Strict):
        obs: Obs  # type: ignore[valid-type]
        actions: Annotated[list[Action], FailFast()] = Field(min_length=1, max_length=1000)  # type: ignore[valid-type]

    class StepRequest(ActRequest):
        """One control step: the previous transition (omit on the first step), then plan from `obs`."""

        transition: Transition | None = None

    return RequestModels(CreateSession, ObserveRequest, ActRequest, PredictRequest, StepRequest)


