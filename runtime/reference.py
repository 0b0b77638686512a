"""Reference trajectories a session holds and follows: sampled points or a named parametric path.

A client gives a session a reference once (`Session.set_reference`, `PUT /v1/sessions/{id}/reference`);
every `act`/`step` then reads the reference over the planning horizon from the session's reference clock
and advances the clock by one control period (or to the time the client sends). The artifact says which
observation entries a reference feeds (`ReferenceLayout`, from the family): position and, as feed-forward,
velocity; every other entry keeps the cost's own target (e.g. a level attitude).

Parametric paths (positions p(t) in metres, t in seconds since the reference started; w = 2 pi / period):
  hover:    p = center
  circle:   p = center + radius * (cos(w t) - 1) u + radius * sin(w t) v      (starts at center)
  figure8:  p = center + size[0] * sin(w t) u + size[1] * sin(2 w t) v         (starts at center)
with u, v the plane's two axes ("xz": u = x, v = z; "xy": u = x, v = y; "yz": u = y, v = z).
Sampled points: `times` (T,) increasing, `positions` (T, 3), optional `velocities` (T, 3) (else the slope
of the linear interpolation); before the first time the first point holds, after the last the last (at rest).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .cost import Cost

KINDS = ("hover", "circle", "figure8", "points")
PLANES = {"xz": (0, 2), "xy": (0, 1), "yz": (1, 2)}
MAX_POINTS = 100_000


@dataclass(frozen=True)
class ReferenceLayout:
    """Which observation entries a reference feeds, and the control period that advances it (the manifest's
    `reference`, declared by the family)."""

    dt: float  # s per control step
    position: tuple[int, ...]  # obs indices of x, y, z
    velocity: tuple[int, ...] = ()  # obs indices of vx, vy, vz (feed-forward); empty: positions only

    @classmethod
    def from_dict(cls, d: dict) -> ReferenceLayout:
        """From the manifest's JSON object."""
        return cls(float(d["dt"]), tuple(int(i) for i in d["position"]), tuple(int(i) for i in d.get("velocity", ())))

    def to_dict(self) -> dict:
        """As the manifest's JSON object."""
        return {"dt": self.dt, "position": list(self.position), "velocity": list(self.velocity)}


@dataclass(frozen=True)
class Reference:
    """A reference trajectory in position (3D); `at(t)` gives positions, velocities and accelerations."""

    kind: str = "hover"
    center: tuple[float, float, float] = (0.0, 0.0, 1.0)
    size: tuple[float, float] = (1.0, 1.0)  # figure8: amplitudes along u and v; circle: size[0] is the radius
    period: float = 2 * np.pi  # s, one lap
    plane: str = "xz"
    times: np.ndarray | None = field(default=None, compare=False)  # (T,) points only
    positions: np.ndarray | None = field(default=None, compare=False)  # (T, 3)
    velocities: np.ndarray | None = field(default=None, compare=False)  # (T, 3) or None

    @classmethod
    def from_dict(cls, d: dict) -> Reference:
        """Parse and check a JSON-like dict (the HTTP body's shape); a ValueError says what is wrong."""
        kind = d.get("kind", "points" if "positions" in d else None)
        if kind not in KINDS:
            raise ValueError(f"reference.kind must be one of {KINDS}, got {kind!r}")
        allowed = {"kind", "times", "positions", "velocities"} if kind == "points" else {
            "kind", "center", "size", "period", "plane"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"reference ({kind}): unknown fields {sorted(unknown)}; expected {sorted(allowed)}")
        if kind == "points":
            return cls._points(d)
        ref = cls(kind=kind, center=tuple(_floats(d.get("center", (0.0, 0.0, 1.0)), 3, "center")),  # type: ignore[arg-type]
                  size=tuple(_floats(d.get("size", (1.0, 1.0)), 2, "size")),  # type: ignore[arg-type]
                  period=float(d.get("period", 2 * np.pi)), plane=str(d.get("plane", "xz")))
        if not (np.isfinite(ref.period) and ref.period > 0):
            raise ValueError(f"reference.period must be a positive number of seconds, got {ref.period}")
        if ref.plane not in PLANES:
            raise ValueError(f"reference.plane must be one of {sorted(PLANES)}, got {ref.plane!r}")
        return ref

    @classmethod
    def _points(cls, d: dict) -> Reference:
        times = np.asarray(d.get("times"), dtype=np.float64)
        positions = np.asarray(d.get("positions"), dtype=np.float64)
        if times.ndim != 1 or not 1 <= len(times) <= MAX_POINTS:
            raise ValueError(f"reference.times must be a list of 1 to {MAX_POINTS} numbers (seconds)")
        if positions.shape != (len(times), 3):
            raise ValueError(f"reference.positions must have shape ({len(times)}, 3), got {positions.shape}")
        velocities = None
        if d.get("velocities") is not None:
            velocities = np.asarray(d["velocities"], dtype=np.float64)
            if velocities.shape != (len(times), 3):
                raise ValueError(f"reference.velocities must have shape ({len(times)}, 3), got {velocities.shape}")
        if not all(np.isfinite(a).all() for a in (times, positions, velocities if velocities is not None else 0.0)):
            raise ValueError("reference times, positions and velocities must be finite")
        if (np.diff(times) <= 0).any():
            raise ValueError("reference.times must be strictly increasing")
        return cls(kind="points", times=times, positions=positions, velocities=velocities)

    def to_dict(self) -> dict:
        """As the JSON object `from_dict` reads."""
        if self.kind == "points":
            assert self.times is not None and self.positions is not None
            d = {"kind": "points", "times": self.times.tolist(), "positions": self.positions.tolist()}
            if self.velocities is not None:
                d["velocities"] = self.velocities.tolist()
            return d
        return {"kind": self.kind, "center": list(self.center), "size": list(self.size), "period": self.period,
                "plane": self.plane}

    def at(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity and acceleration, each (T, 3), at times t (T,) in seconds."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))  # (T,)
        if self.kind == "points":
            return self._sampled(t)
        pos = np.tile(np.asarray(self.center, dtype=np.float64), (len(t), 1))  # (T, 3)
        vel, acc = np.zeros_like(pos), np.zeros_like(pos)
        if self.kind == "hover":
            return pos, vel, acc
        w = 2 * np.pi / self.period
        iu, iv = PLANES[self.plane]
        if self.kind == "figure8":
            a, b = self.size
            pos[:, iu] += a * np.sin(w * t)
            vel[:, iu] = a * w * np.cos(w * t)
            acc[:, iu] = -a * w * w * np.sin(w * t)
            pos[:, iv] += b * np.sin(2 * w * t)
            vel[:, iv] = 2 * b * w * np.cos(2 * w * t)
            acc[:, iv] = -4 * b * w * w * np.sin(2 * w * t)
        else:  # circle
            r = self.size[0]
            pos[:, iu] += r * (np.cos(w * t) - 1.0)
            vel[:, iu] = -r * w * np.sin(w * t)
            acc[:, iu] = -r * w * w * np.cos(w * t)
            pos[:, iv] += r * np.sin(w * t)
            vel[:, iv] = r * w * np.cos(w * t)
            acc[:, iv] = -r * w * w * np.sin(w * t)
        return pos, vel, acc

    def _sampled(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.times is not None and self.positions is not None
        ts, ps = self.times, self.positions
        pos = np.stack([np.interp(t, ts, ps[:, k]) for k in range(3)], axis=1)  # (T, 3)
        if self.velocities is not None:
            vel = np.stack([np.interp(t, ts, self.velocities[:, k]) for k in range(3)], axis=1)
        elif len(ts) > 1:
            i = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(ts) - 2)  # segment of each t
            vel = (ps[i + 1] - ps[i]) / (ts[i + 1] - ts[i])[:, None]
        else:
            vel = np.zeros_like(pos)
        vel = np.where(((t < ts[0]) | (t > ts[-1]))[:, None], 0.0, vel)  # held points are at rest
        return pos, vel, np.zeros_like(pos)

    @cached_property
    def encoded(self) -> np.ndarray:
        """`to_dict` as JSON bytes (uint8), computed once: sessions save it with every state snapshot."""
        return np.frombuffer(json.dumps(self.to_dict()).encode(), dtype=np.uint8)

    def summary(self) -> dict:
        """What a session reports of its reference: the parameters, or a points reference's extent."""
        if self.kind != "points":
            return self.to_dict()
        assert self.times is not None
        return {"kind": "points", "n_points": len(self.times), "start": float(self.times[0]),
                "end": float(self.times[-1]), "velocities": self.velocities is not None}

    def targets(self, base: np.ndarray, layout: ReferenceLayout, t0: float) -> np.ndarray:
        """`base` (H, obs_dim) with the reference written in: row i is for the obs at t0 + (i + 1) dt."""
        out = np.array(base, dtype=np.float32)  # (H, O)
        pos, vel, _ = self.at(t0 + layout.dt * np.arange(1, len(out) + 1))
        out[:, list(layout.position)] = pos[:, : len(layout.position)]
        if layout.velocity:
            out[:, list(layout.velocity)] = vel[:, : len(layout.velocity)]
        return out


def _floats(v, n: int, name: str) -> list[float]:
    """`n` finite floats, or a ValueError naming the field."""
    try:
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        raise ValueError(f"reference.{name} must be a list of {n} numbers, got {v!r}") from None
    if len(out) != n or not np.isfinite(out).all():
        raise ValueError(f"reference.{name} must be a list of {n} finite numbers, got {v!r}")
    return out


@dataclass
class Tracking:
    """A session's reference and its clocks: which targets the next plan follows (mutable, session-owned)."""

    reference: Reference | None = None
    time: float = 0.0  # s on the reference's clock: the time of the obs the next plan starts from
    n_acted: int = 0  # plans since reset: the row a session cost's (T, obs_dim) target is read from

    def holding(self, reference: Reference | None, time: float, layout: ReferenceLayout | None) -> Tracking:
        """This tracking with `reference` held (None: dropped) and its clock at `time` s; a ValueError if the
        artifact has no reference layout for it or the time is not finite."""
        if reference is not None and layout is None:
            raise ValueError("this artifact's family declares no reference layout (which obs entries are position "
                             "and velocity): send cost targets")
        if not np.isfinite(time):
            raise ValueError("time must be finite")
        return Tracking(reference, float(time), self.n_acted)

    def cost_for(self, cost: Cost, horizon: int, layout: ReferenceLayout | None, request_target: bool,
                 time: float | None) -> tuple[Cost, int]:
        """The cost to plan with and the target row to start from, then the clocks advance one step.

        In order of precedence: a per-request target (`request_target`; its rows start now); the held
        reference, read at `time` (None: where the last plan left the clock); the session cost's own target (its
        rows advance one per plan). The clock runs (one control period per plan) with or without a reference.
        """
        if time is not None and not np.isfinite(time):
            raise ValueError("time must be finite (seconds on the session reference's clock)")
        t = self.time if time is None else float(time)
        start = 0
        if self.reference is not None and not request_target:
            assert layout is not None  # Session.set_reference checked it
            cost = dataclasses.replace(cost, target=self.reference.targets(cost.target_for(horizon), layout, t))
        elif not request_target:
            start = self.n_acted
        self.time = t + (layout.dt if layout is not None else 0.0)
        self.n_acted += 1
        return cost, start

    def arrays(self) -> dict[str, np.ndarray]:
        """For a session's `state_dict`."""
        ref = np.zeros(0, np.uint8) if self.reference is None else self.reference.encoded
        return {"reference": ref, "ref_time": np.array(self.time),
                "n_acted": np.array(self.n_acted)}

    def load(self, state: dict[str, np.ndarray]) -> Tracking:
        """What `arrays` saved (snapshots from before references were held have none: no reference); the held
        reference object is kept when the saved one is the same."""
        ref = np.asarray(state.get("reference", np.zeros(0, np.uint8)), dtype=np.uint8)
        same = self.reference is not None and np.array_equal(ref, self.reference.encoded)
        reference = self.reference if same else (Reference.from_dict(json.loads(ref.tobytes())) if len(ref) else None)
        return Tracking(reference, float(state.get("ref_time", 0.0)), int(state.get("n_acted", 0)))
