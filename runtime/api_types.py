"""Constrained JSON field types of the HTTP API: each one validated cheaply and stated in the OpenAPI schema.

A number must be finite in float32 (the device computes in float32); an integer field takes any integral JSON
number (`15` or `15.0`, as JSON Schema's "integer" does, not `15.5`); a vector has exactly its dimension,
checked before its items so a huge array is one error; an observation lies in the range the model was trained
on, widened by `MAX_STDS` standard deviations (the per-entry bounds are `prefixItems` in the schema).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .normalization import Normalization
from .validation import MAX_STDS

F32_MAX = 3.4028234663852886e38  # float32's largest finite value
MARGIN = 0.99  # schema bounds sit this far inside the runtime's own check, so float32 rounding never crosses it


def finite_f32(v: float) -> float:
    """`v`, or an error if it is not finite in float32."""
    if not -F32_MAX <= v <= F32_MAX:
        raise PydanticCustomError("finite_number", "Input should be a finite number in float32 (|x| <= 3.4e38)")
    return v


F32 = Annotated[float, AfterValidator(finite_f32), Field(json_schema_extra={"minimum": -F32_MAX, "maximum": F32_MAX})]


def integral(v: Any) -> Any:
    """An integral float (`15.0`) as the int JSON Schema says it is; anything else as it came."""
    return int(v) if type(v) is float and v.is_integer() else v


def integer(ge: int, le: int) -> Any:
    """An integer in [ge, le] that may be written 15.0 (the bounds are the schema's minimum and maximum)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(integral)]


def at_most(n: int):
    """A before-validator: a list or object of more than `n` entries is one error, before its items are read."""
    def check(v: Any) -> Any:
        if isinstance(v, dict | list) and len(v) > n:
            raise PydanticCustomError("too_long", "must have at most {n} entries, got {got}", {"n": n, "got": len(v)})
        return v

    return check


def one_of(allowed: list[int]):
    """An after-validator: the value must be one of `allowed` (the artifact's horizons)."""
    def check(v: int) -> int:
        if v not in allowed:
            raise PydanticCustomError("literal_error", "Input should be {expected} (the artifact's horizons)",
                                      {"expected": " or ".join(map(str, allowed))})
        return v

    return check


def horizon_of(allowed: list[int]) -> Any:
    """An integer (that may be written 15.0) that must be one of `allowed`, stated as the schema's enum."""
    enum: Any = list(allowed)
    return Annotated[int, BeforeValidator(integral), AfterValidator(one_of(allowed)),
                     Field(json_schema_extra={"enum": enum})]


def exact_length(n: int, what: str):
    """A before-validator: a list must have `n` entries (checked before its items: a huge array is one error)."""
    def check(v: Any) -> Any:
        if isinstance(v, list) and len(v) != n:
            raise PydanticCustomError("wrong_length", "must have length {n} ({what}), got {got}",
                                      {"n": n, "what": what, "got": len(v)})
        return v

    return check


def within(lo: list[float], hi: list[float]):
    """An after-validator: entry i of a vector must lie in [lo[i], hi[i]]."""
    def check(v: list[float]) -> list[float]:
        for i, (x, a, b) in enumerate(zip(v, lo, hi, strict=True)):
            if not a <= x <= b:
                raise PydanticCustomError(
                    "out_of_range", "entry {i} must be within [{lo}, {hi}] ({k:g} training standard deviations): "
                    "check its units and the sensor", {"i": i, "lo": f"{a:.6g}", "hi": f"{b:.6g}", "k": MAX_STDS})
        return v

    return check


def vector(n: int, what: str, item: Any = F32, bounds: tuple[list[float], list[float]] | None = None) -> Any:
    """A JSON array of exactly `n` numbers finite in float32, entry i within bounds[0][i]..bounds[1][i] if given."""
    schema: dict[str, Any] = {"minItems": n, "maxItems": n}
    checks: list[Any] = []
    if bounds is not None:
        schema["prefixItems"] = [{"type": "number", "minimum": a, "maximum": b} for a, b in zip(*bounds, strict=True)]
        checks = [AfterValidator(within(*bounds))]
    args = (list[item], BeforeValidator(exact_length(n, what)), *checks, Field(json_schema_extra=schema))
    return Annotated[args]  # type: ignore[valid-type]


def state_bounds(norm: Normalization) -> tuple[list[float], list[float]]:
    """Per-entry bounds for obs and next_obs such that the runtime's scale checks (`Session`) always pass.

    Each entry stays within MAX_STDS training std devs of its mean, and so close that next_obs - obs stays
    within MAX_STDS std devs of the mean change: half-width min(K obs_std, (K delta_std - |delta_mean|) / 2).
    """
    k = MAX_STDS * MARGIN
    std, dstd, dmean = (np.asarray(a, np.float64) for a in (norm.obs_std, norm.delta_std, norm.delta_mean))
    half = np.maximum(np.minimum(k * std, (k * dstd - np.abs(dmean)) / 2), 0.0)
    mean = np.asarray(norm.obs_mean, np.float64)
    return [float(x) for x in mean - half], [float(x) for x in mean + half]


def reward_bounds(norm: Normalization) -> tuple[float, float]:
    """The reward range the runtime accepts (MAX_STDS std devs of the training rewards), less the margin."""
    k = MAX_STDS * MARGIN
    return norm.reward_mean - k * norm.reward_std, norm.reward_mean + k * norm.reward_std


class Strict(BaseModel):
    """Strict JSON: no `true`/`"1.5"` for numbers (ints are fine for floats; integer fields take 15 or 15.0,
    not 15.5), no NaN/inf, no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _few_keys(cls, data: Any) -> Any:
        """Many unknown keys are one error, not one per key (validation cost is bounded by the schema)."""
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + 8:
            raise PydanticCustomError("extra_forbidden", "extra inputs are not permitted: {n} keys, known: {known}",
                                      {"n": len(data), "known": ", ".join(cls.model_fields)})
        return data
