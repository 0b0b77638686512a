"""HTTP API schemas: responses, error bodies, and strict request models built per artifact.

Every vector in a request has the artifact's exact dimension, so the OpenAPI schema at /docs
tells a client precisely what to send; models are strict (no `true` or `"1.5"` for a float).
"""

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class ErrorMessage(BaseModel):
    """A 4xx error other than validation: `detail` says what was wrong and what to do."""

    detail: str


class ValidationIssue(BaseModel):
    """One validation problem: where (`loc`), what was expected (`msg`), and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorMessage(BaseModel):
    """422: one entry per problem; `loc` names the field, `msg` what was expected."""

    detail: list[ValidationIssue]


Responses = dict[int | str, dict[str, Any]]
TOO_LARGE = "Content Too Large"  # Starlette's body-limit reply (text/plain); chunked bodies get the same


def _err(description: str, model: type[BaseModel] = ErrorMessage) -> dict[str, Any]:
    return {"model": model, "description": description}


AUTH: Responses = {401: _err("Missing or wrong bearer token (only when the server runs with --token)")}
BODY: Responses = {
    413: {"description": "Request body larger than the server's --max-body-bytes (plain text)",
          "content": {"text/plain": {"schema": {"type": "string", "example": TOO_LARGE}}}},
    422: _err("Invalid input: wrong field, type, dimension or a non-finite number", ValidationErrorMessage),
}
NOT_FOUND: Responses = {404: _err("No session with this id")}


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
    horizons: list[int]
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


class Observed(BaseModel):
    """POST observe: transitions folded so far and the surprise of each new one."""

    n_observed: int
    surprise: list[float | None] = Field(description="per transition; null if it overflowed (non-finite)")


class Acted(BaseModel):
    """POST act: the action to apply now, the plan, its predicted states and cost."""

    action: list[float]
    plan: list[list[float]]
    predicted_obs: list[list[float]]
    expected_cost: float | None = Field(description="null if it overflowed (non-finite)")


class Predicted(BaseModel):
    """POST predict: open-loop predicted observations (and variance where the mode has one)."""

    predicted_obs: list[list[float]]
    predicted_var: list[list[float]] | None


# ------------------------------------------------------------------------------------------ request models
class _Strict(BaseModel):
    """Strict JSON: no `true`/`"1.5"` for numbers (ints are fine for floats), no NaN/inf, no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def _exact_length(n: int, what: str):
    def check(v: list) -> list:
        if len(v) != n:
            raise PydanticCustomError("wrong_length", "must have length {n} ({what}), got {got}",
                                      {"n": n, "what": what, "got": len(v)})
        return v

    return check


def _vector(n: int, what: str, item: Any = float) -> Any:
    """A JSON array of exactly `n` finite numbers (the length is in the OpenAPI schema too)."""
    return Annotated[list[item], AfterValidator(_exact_length(n, what)),
                     Field(json_schema_extra={"minItems": n, "maxItems": n})]


class RequestModels(NamedTuple):
    """The request schemas of one artifact (dimensions, modes and horizons built in)."""

    CreateSession: type[_Strict]
    ObserveRequest: type[_Strict]
    ActRequest: type[_Strict]
    PredictRequest: type[_Strict]


def build_request_models(
    obs_dim: int, action_dim: int, modes: list[str], horizons: list[int]
) -> RequestModels:
    """Strict request bodies with this artifact's dimensions, modes and horizons."""
    Obs = _vector(obs_dim, "obs_dim")
    Action = _vector(action_dim, "action_dim")
    NonNegative = Annotated[float, Field(ge=0)]

    class PlannerPatch(_Strict):
        """Planner fields to override; omitted (or null) fields keep the session's value."""

        method: Literal["mppi", "cem"] | None = None
        horizon: Literal[tuple(horizons)] | None = None  # type: ignore[valid-type]
        samples: int | None = Field(None, ge=1, le=8192)
        iterations: int | None = Field(None, ge=1, le=20)
        temperature: float | None = Field(None, gt=0, le=1e6)
        noise_scale: float | None = Field(None, gt=0, le=10)
        elite_frac: float | None = Field(None, gt=0, le=1)

    class CostPatch(_Strict):
        """Cost fields to override; `target` is one obs vector or a reference of H of them."""

        target: list[float] | list[list[float]] | None = Field(
            None, description=f"({obs_dim},) or (H, {obs_dim})"
        )
        q: _vector(obs_dim, "obs_dim", NonNegative) | None = None  # type: ignore[valid-type]
        r: _vector(action_dim, "action_dim", NonNegative) | None = None  # type: ignore[valid-type]
        terminal_weight: float | None = Field(None, ge=0, le=1e6)
        reward_weight: float | None = Field(None, ge=-1e6, le=1e6)
        uncertainty_weight: float | None = Field(None, ge=0, le=1e6)

        @field_validator("target")
        @classmethod
        def _target_shape(cls, v):
            rows = v if v and isinstance(v[0], list) else [v]
            if v is not None and not (1 <= len(rows) <= 10_000 and all(len(row) == obs_dim for row in rows)):
                raise PydanticCustomError(
                    "wrong_shape", "expected shape ({d},) or (H, {d}) with 1 <= H <= 10000", {"d": obs_dim}
                )
            return v

    class CreateSession(_Strict):
        mode: Literal[tuple(modes)] | None = None  # type: ignore[valid-type]
        planner: PlannerPatch | None = None
        cost: CostPatch | None = None
        seed: int | None = Field(None, ge=0, le=2**63 - 1)
        task_params: dict[str, float] | None = Field(None, max_length=64)

    class Transition(_Strict):
        obs: Obs  # type: ignore[valid-type]
        action: Action  # type: ignore[valid-type]
        next_obs: Obs  # type: ignore[valid-type]
        reward: float | None = None

    class ObserveRequest(_Strict):
        transitions: list[Transition] = Field(min_length=1, max_length=1000)

    class ActRequest(_Strict):
        obs: Obs  # type: ignore[valid-type]
        cost: CostPatch | None = None
        planner: PlannerPatch | None = None

    class PredictRequest(_Strict):
        obs: Obs  # type: ignore[valid-type]
        actions: list[Action] = Field(min_length=1, max_length=1000)  # type: ignore[valid-type]

    return RequestModels(CreateSession, ObserveRequest, ActRequest, PredictRequest)


