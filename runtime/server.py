"""The HTTP API (DESIGN §5): FastAPI over `Runtime` and `Session`, numpy + onnxruntime only.

`create_app(artifact)` builds the app; the `Runtime` is loaded in the lifespan and kept on
`app.state` with the session store. Request models are built per artifact so that every
vector has its exact dimension in the OpenAPI schema. Client mistakes are 4xx, never 500.
"""

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .manifest import load_manifest, sha256_file
from .model import Runtime
from .session import Session

log = logging.getLogger("mbmrl.serve")

TOO_LARGE = "Content Too Large"  # Starlette's body-limit reply (text/plain); chunked bodies get the same
UNAUTHORIZED = "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'"


class ErrorMessage(BaseModel):
    """A 4xx error other than validation: `detail` says what was wrong and what to do."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorMessage(BaseModel):
    """422: one entry per problem; `loc` names the field, `msg` what was expected."""

    detail: list[ValidationIssue]


Responses = dict[int | str, dict[str, Any]]


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
    status: str


class ModelInfo(BaseModel):
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
    session_id: str
    mode: str


class SessionList(BaseModel):
    sessions: list[str]


class SessionInfo(BaseModel):
    session_id: str
    mode: str
    n_observed: int
    planner: dict[str, Any]
    cost: dict[str, Any]
    h_norm: float
    w_shift: float


class Observed(BaseModel):
    n_observed: int
    surprise: list[float | None] = Field(description="per transition; null if it overflowed (non-finite)")


class Acted(BaseModel):
    action: list[float]
    plan: list[list[float]]
    predicted_obs: list[list[float]]
    expected_cost: float | None = Field(description="null if it overflowed (non-finite)")


class Predicted(BaseModel):
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


# ------------------------------------------------------------------------------------------ session store
class UnknownSession(LookupError):
    """No live session has this id."""


class TooManySessions(RuntimeError):
    """The server holds `max_sessions` already."""


@dataclass
class _Entry:
    session: Session
    meta: dict  # what rebuilds the session: mode, planner, cost, seed, task_params, artifact
    deleted: bool = False


class SessionStore:
    """Live sessions by id; with a state dir, each one is mirrored to `DIR/<id>.npz` after every change.

    The file holds `Session.state_dict()` plus `__meta__` (UTF-8 JSON as uint8), written to a temporary
    file and moved into place with `os.replace`, so a crash leaves the old state or the new, never half.
    """

    ID = re.compile(r"[0-9a-f]{32}")

    def __init__(self, rt: Runtime, state_dir: str | Path | None = None, max_sessions: int = 1024):
        self.rt = rt
        self.state_dir = Path(state_dir) if state_dir else None
        if self.state_dir:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self.max_sessions = max_sessions
        self.artifact_id = sha256_file(rt.path / "manifest.json")
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def get(self, session_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(session_id)
        if entry is None:
            raise UnknownSession(f"no session {session_id!r}: create one with POST /v1/sessions "
                                 "(sessions end on DELETE, or on restart without --state-dir)")
        return entry

    def create(self, mode=None, planner=None, cost=None, seed=None, task_params=None) -> tuple[str, Session]:
        """A new session (ValueError for bad settings, TooManySessions when full), persisted at once."""
        session = self.rt.new_session(mode, planner=planner, cost=cost, seed=seed, task_params=task_params)
        meta = {"mode": session.mode, "planner": session.planner.to_dict(), "cost": session.cost.to_dict(),
                "seed": seed, "task_params": task_params, "artifact": self.artifact_id}
        session_id, entry = secrets.token_hex(16), _Entry(session, meta)
        with self._lock:
            if len(self._entries) >= self.max_sessions:
                raise TooManySessions(f"this server holds its maximum of {self.max_sessions} sessions: "
                                      "DELETE /v1/sessions/{id} the ones you no longer need")
            self._entries[session_id] = entry
        with session.lock:
            self.persist(session_id, entry)
        return session_id, session

    def delete(self, session_id: str) -> None:
        entry = self.get(session_id)
        with self._lock:
            if self._entries.pop(session_id, None) is None:
                raise UnknownSession(f"no session {session_id!r}")
        with entry.session.lock:
            entry.deleted = True
            if self.state_dir:
                (self.state_dir / f"{session_id}.npz").unlink(missing_ok=True)

    def persist(self, session_id: str, entry: _Entry) -> None:
        """Write the session's state atomically (call with the session lock held)."""
        if self.state_dir is None or entry.deleted:
            return
        arrays = dict(entry.session.state_dict())
        arrays["__meta__"] = np.frombuffer(json.dumps(entry.meta).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{session_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, self.state_dir / f"{session_id}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def restore(self) -> int:
        """Load every persisted session of this artifact; unreadable files are reported and skipped."""
        if self.state_dir is None:
            return 0
        for tmp in self.state_dir.glob(".*.tmp"):  # left by a crash mid-write
            tmp.unlink(missing_ok=True)
        n = 0
        for path in sorted(self.state_dir.glob("*.npz")):
            if not self.ID.fullmatch(path.stem):
                continue
            try:
                entry = self._load(path)
            except (OSError, ValueError, KeyError, SyntaxError, zipfile.BadZipFile) as e:
                log.warning("not restoring session from %s: %s", path, e)
                continue
            with self._lock:
                self._entries[path.stem] = entry
            n += 1
        return n

    def _load(self, path: Path) -> _Entry:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(bytes(arrays.pop("__meta__")).decode())
        if meta.get("artifact") != self.artifact_id:
            raise ValueError("it was saved with a different artifact (manifest.json differs)")
        session = self.rt.new_session(meta["mode"], planner=meta["planner"], cost=meta["cost"],
                                      seed=meta["seed"], task_params=meta["task_params"])
        session.load_state_dict(arrays)
        return _Entry(session, meta)


def _sanitized_errors(exc: RequestValidationError) -> list[dict]:
    """Validation errors without `input`/`ctx`: never echo (possibly non-finite) client input."""
    return [
        {
            "loc": [p for p in e.get("loc", ()) if isinstance(p, str | int)],
            "msg": str(e.get("msg", "invalid")),
            "type": str(e.get("type", "value_error")),
        }
        for e in exc.errors()
    ]


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": _sanitized_errors(exc)})


async def _on_too_large(request: Request, exc: HTTPException) -> PlainTextResponse:
    return PlainTextResponse(TOO_LARGE, status_code=413)


@contextmanager
def _client_errors() -> Iterator[None]:
    """A ValueError from the runtime is about the client's input: 422 with its message."""
    try:
        yield
    except ValueError as e:
        raise HTTPException(422, detail=[{"loc": ["body"], "msg": str(e), "type": "value_error"}]) from e


def _authorized(header: bytes | None, token: bytes) -> bool:
    if not header or not header[:7].lower() == b"bearer ":
        return False
    return secrets.compare_digest(header[7:].strip(), token)


class BearerAuth:
    """ASGI middleware: every path but /healthz needs `Authorization: Bearer <token>` (checked first)."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/healthz":
            header = dict(scope["headers"]).get(b"authorization")
            if not _authorized(header, self.token):
                response = JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _patch(model: BaseModel | None) -> dict | None:
    """The fields a client set (null means "keep the current value")."""
    return model.model_dump(exclude_none=True) if model is not None else None


def _store(request: Request) -> SessionStore:
    return request.app.state.store


Store = Annotated[SessionStore, Depends(_store)]


@contextmanager
def _session(store: SessionStore, session_id: str, *, persist: bool = False):
    """The session under its lock; client errors become 422, and a change is persisted before unlocking."""
    try:
        entry = store.get(session_id)
    except UnknownSession as e:
        raise HTTPException(404, detail=str(e)) from e
    with entry.session.lock, _client_errors():
        yield entry.session
        if persist:
            store.persist(session_id, entry)


def create_app(
    artifact: str | Path,
    *,
    token: str | None = None,
    state_dir: str | Path | None = None,
    threads: int = 1,
    max_body_bytes: int = 1_000_000,
    max_sessions: int = 1024,
) -> FastAPI:
    """The HTTP API for one artifact; the model is loaded when the app starts (lifespan)."""
    manifest = load_manifest(artifact, verify=False)  # dims for the request schemas; verified in lifespan
    m: RequestModels = build_request_models(
        obs_dim=manifest["obs_dim"], action_dim=manifest["action_dim"], modes=sorted(manifest["modes"]),
        horizons=sorted(int(g["horizon"]) for n, g in manifest["graphs"].items() if n.startswith("rollout")),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = Runtime(artifact, threads=threads)
        app.state.runtime = rt
        app.state.store = SessionStore(rt, state_dir=state_dir, max_sessions=max_sessions)
        n = app.state.store.restore()
        if n:
            log.warning("restored %d session(s) from %s", n, state_dir)
        yield

    app = FastAPI(
        title="mbmrl runtime", version="1", lifespan=lifespan, max_body_size=max_body_bytes,
        description="Adapt a meta-trained dynamics model per session and plan actions with MPC (DESIGN §5).",
        exception_handlers={RequestValidationError: _on_validation_error, 413: _on_too_large},
    )
    deps = [Depends(HTTPBearer(auto_error=False, description="the server's --token"))] if token else []
    if token:
        app.add_middleware(BearerAuth, token=token)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> dict:
        """Liveness probe; never needs the token."""
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelInfo, responses=AUTH, tags=["model"], dependencies=deps)
    def model(request: Request) -> dict:
        """Dimensions, names, bounds, modes and defaults of the loaded artifact."""
        rt: Runtime = request.app.state.runtime
        mf = rt.manifest
        return {
            "obs_dim": rt.obs_dim, "action_dim": rt.action_dim,
            "obs_names": mf.get("obs_names") or [f"obs{i}" for i in range(rt.obs_dim)],
            "action_names": mf.get("action_names") or [f"action{i}" for i in range(rt.action_dim)],
            "action_low": rt.action_low.tolist(), "action_high": rt.action_high.tolist(),
            "hidden_size": rt.hidden_size, "modes": rt.modes, "default_mode": rt.default_mode,
            "default_cost": rt.default_cost.to_dict(), "default_planner": rt.default_planner.to_dict(),
            "horizons": rt.horizons, "family": mf.get("family"), "format_version": mf["format_version"],
        }

    @app.post("/v1/sessions", status_code=201, response_model=SessionCreated, tags=["sessions"],
              responses={**AUTH, **BODY, 429: _err("Too many sessions: delete some first")},
              dependencies=deps)
    def create_session(body: m.CreateSession, store: Store) -> dict:  # type: ignore[name-defined]
        """Start an adaptation session (prior belief, empty plan)."""
        with _client_errors():
            try:
                session_id, session = store.create(
                    mode=body.mode, planner=_patch(body.planner), cost=_patch(body.cost),
                    seed=body.seed, task_params=body.task_params,
                )
            except TooManySessions as e:
                raise HTTPException(429, detail=str(e)) from e
        return {"session_id": session_id, "mode": session.mode}

    @app.get("/v1/sessions", response_model=SessionList, responses=AUTH, tags=["sessions"], dependencies=deps)
    def list_sessions(store: Store) -> dict:
        """Ids of the live sessions."""
        return {"sessions": store.ids()}

    @app.get("/v1/sessions/{session_id}", response_model=SessionInfo, responses={**AUTH, **NOT_FOUND},
             tags=["sessions"], dependencies=deps)
    def session_info(session_id: str, store: Store) -> dict:
        """Mode, counters, planner, cost and how far the belief moved from the prior."""
        with _session(store, session_id) as s:
            return {"session_id": session_id, **s.info()}

    @app.post("/v1/sessions/{session_id}/observe", response_model=Observed, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND}, dependencies=deps)
    def observe(session_id: str, body: m.ObserveRequest, store: Store) -> dict:  # type: ignore[name-defined]
        """Fold transitions into the belief; `surprise` is the prior's error on each one."""
        with _session(store, session_id, persist=True) as s:
            surprise = s.observe_many([t.model_dump() for t in body.transitions])
            return {"n_observed": s.n_observed, "surprise": surprise}

    @app.post("/v1/sessions/{session_id}/act", response_model=Acted, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND}, dependencies=deps)
    def act(session_id: str, body: m.ActRequest, store: Store) -> dict:  # type: ignore[name-defined]
        """Plan from `obs` under the adapted model (MPC): the action to apply now and the plan."""
        with _session(store, session_id, persist=True) as s:
            r = s.act(body.obs, cost=_patch(body.cost), planner=_patch(body.planner))
            return {"action": r.action.tolist(), "plan": r.plan.tolist(),
                    "predicted_obs": r.predicted_obs.tolist(), "expected_cost": r.expected_cost}

    @app.post("/v1/sessions/{session_id}/predict", response_model=Predicted, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND}, dependencies=deps)
    def predict(session_id: str, body: m.PredictRequest, store: Store) -> dict:  # type: ignore[name-defined]
        """Open-loop prediction under the adapted model; variance only in bayes mode."""
        with _session(store, session_id) as s:
            obs, var = s.predict(body.obs, body.actions)
            return {"predicted_obs": obs.tolist(), "predicted_var": None if var is None else var.tolist()}

    @app.post("/v1/sessions/{session_id}/reset", response_model=SessionInfo, tags=["sessions"],
              responses={**AUTH, **NOT_FOUND}, dependencies=deps)
    def reset(session_id: str, store: Store) -> dict:
        """Forget everything observed: back to the prior belief and an empty plan."""
        with _session(store, session_id, persist=True) as s:
            s.reset()
            return {"session_id": session_id, **s.info()}

    @app.delete("/v1/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["sessions"],
                responses={**AUTH, **NOT_FOUND}, dependencies=deps)
    def delete_session(session_id: str, store: Store) -> None:
        """End a session and remove its persisted state."""
        try:
            store.delete(session_id)
        except UnknownSession as e:
            raise HTTPException(404, detail=str(e)) from e

    return app
