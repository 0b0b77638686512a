"""The HTTP API (DESIGN §5): FastAPI over `Runtime` and `Session`, numpy + onnxruntime only.

`create_app(artifact)` builds the app; the `Runtime` is loaded in the lifespan and kept on
`app.state` with the session store. Request models are built per artifact so that every
vector has its exact dimension in the OpenAPI schema. Client mistakes are 4xx, never 500.
"""

import logging
import secrets
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from .api_models import (  # noqa: F401  (re-exported: the schemas are part of the server's API)
    AUTH,
    BODY,
    NOT_FOUND,
    TOO_LARGE,
    Acted,
    ErrorMessage,
    Health,
    ModelInfo,
    Observed,
    Predicted,
    RequestModels,
    SessionCreated,
    SessionInfo,
    SessionList,
    ValidationErrorMessage,
    _err,
    build_request_models,
)
from .artifact import FORMAT_VERSION, Manifest
from .loader import load
from .model import Runtime
from .session_store import SessionStore, TooManySessions, UnknownSession  # noqa: F401

log = logging.getLogger("mbmrl.serve")

UNAUTHORIZED = "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'"


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
        """ASGI entry: reject a request without the right token before it reaches the app."""
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
    manifest = Manifest.load(artifact, verify=False)  # dims for the request schemas; verified in lifespan
    m: RequestModels = build_request_models(obs_dim=manifest.obs_dim, action_dim=manifest.action_dim,
                                            modes=sorted(manifest.modes), horizons=manifest.horizons)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = load(artifact, threads=threads)
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
            "obs_names": list(mf.obs_names) or [f"obs{i}" for i in range(rt.obs_dim)],
            "action_names": list(mf.action_names) or [f"action{i}" for i in range(rt.action_dim)],
            "action_low": rt.action_low.tolist(), "action_high": rt.action_high.tolist(),
            "hidden_size": mf.hidden_size, "modes": {k: s.to_dict() for k, s in mf.modes.items()},
            "default_mode": rt.default_mode, "default_cost": rt.default_cost.to_dict(),
            "default_planner": rt.default_planner.to_dict(), "horizons": rt.horizons, "family": mf.family,
            "format_version": FORMAT_VERSION,
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
