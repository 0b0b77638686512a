"""HTTP schemas of a session's reference trajectory (`mbmrl.runtime.reference`): the body of
`PUT /v1/sessions/{id}/reference` and the `reference` of `POST /v1/sessions` (only for artifacts whose family
declares a reference layout)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, model_validator
from pydantic_core import PydanticCustomError

from .api_types import Strict, vector

MAX_POINTS = 10_000  # sampled points of one reference (~1 MB of JSON: the default --max-body-bytes)
BOUND = 1e4  # m, m/s and s: far beyond any robot's workspace, small enough that squared errors stay finite

Number = Annotated[float, Field(ge=-BOUND, le=BOUND)]
Point = vector(3, "3 (x, y, z)", Number)
Points = Annotated[list[Point], Field(min_length=1, max_length=MAX_POINTS)]  # type: ignore[valid-type]


class PathReference(Strict):
    """A named path that starts at `center`: hover (stay there), circle or figure8 in `plane`."""

    kind: Literal["hover", "circle", "figure8"]
    center: Point | None = Field(None, description="(3,) m; default (0, 0, 1)")  # type: ignore[valid-type]
    size: vector(2, "2", Annotated[float, Field(ge=0, le=BOUND)]) | None = Field(  # type: ignore[valid-type]
        None, description="figure8: amplitudes along the plane's two axes; circle: [radius, unused]; m")
    period: float | None = Field(None, ge=1e-2, le=BOUND, description="s per lap; default 2 pi")
    plane: Literal["xz", "xy", "yz"] | None = None

    def spec(self) -> dict:
        """The fields given, as `Reference.from_dict` reads them."""
        return self.model_dump(exclude_none=True)


class PointsReference(Strict):
    """Sampled points: `times` (s), `positions` (m) and optional `velocities` (m/s; else the interpolation's
    slope). Times must increase strictly and every list have one entry per time: rules JSON Schema cannot state,
    answered with a 422 of type "reference_points"."""

    kind: Literal["points"]
    times: Annotated[list[Number], Field(min_length=1, max_length=MAX_POINTS)]  # type: ignore[valid-type]
    positions: Points  # type: ignore[valid-type]
    velocities: Points | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_point_per_time(self) -> PointsReference:
        n = len(self.times)
        if len(self.positions) != n or (self.velocities is not None and len(self.velocities) != n):
            raise PydanticCustomError("reference_points", "positions (and velocities) need one entry per time")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise PydanticCustomError("reference_points", "times must increase strictly")
        return self

    def spec(self) -> dict:
        """The fields given, as `Reference.from_dict` reads them."""
        return self.model_dump(exclude_none=True)


ReferenceBody = Annotated[PathReference | PointsReference, Discriminator("kind")]


class SetReference(Strict):
    """Hold `reference` (null: drop it), its clock starting at `time` s."""

    reference: ReferenceBody | None  # type: ignore[valid-type]
    time: float = Field(0.0, ge=-1e9, le=1e9, description="s on the reference's clock of the next act/step")
