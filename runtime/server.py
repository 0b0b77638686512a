"""The HTTP API (DESIGN §5): FastAPI over `Runtime` and `Session`, numpy + onnxruntime only.

`create_app(artifact)` builds the app; the `Runtime` is loaded in the lifespan and kept on
`app.state` with the session store. Request models are built per artifact so that every
vector has its exact dimension in the OpenAPI schema. Client mistakes are 4xx, never 500.
"""

import logging
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api_models import (  # noqa: F401  (re-exported: the schemas are part of the server's API)
    AUTH,
    BODY,
    BUSY,
    DIVERGED,
    LIMITS,
    NOT_FOUND,
    Acted,
    ErrorMessage,
    Health,
    ModelInfo,
    Observed,
    Predicted,
    RequestModels,
    SessionCreated,
    SessionId,
    SessionInfo,
    SessionList,
    Stepped,
    ValidationErrorMessage,
    _err,
    acted,
    build_request_models,
)
from .api_reference import SetReference
from .artifact import FORMAT_VERSION, Manifest
from .guard import manifest_guard
from .http_guards import (
    DOC_PATHS,
    BearerAuth,
    BodyGuard,
    PlanSlots,
    as_http_error,
    check_plan_work,
    on_http_error,
    on_off_patch,
    on_planning_error,
    on_validation_error,
    plan_patch,
)
from .loader import load
from .model import Runtime
from .recording import RecordSettings
from .session import Session
from .session_store import PersistError, SessionStore, TooManySessions, UnknownSession  # noqa: F401
from .stream import add_stream_route, apply_step
from .types import PlanningError
from .wire import json_reply

log = logging.getLogger("mbmrl.serve")


async def _store(request: Request) -> SessionStore:  # async: no thread-pool hop per request
    return request.app.state.store


Store = Annotated[SessionStore, Depends(_store)]


UNAVAILABLE: dict[int | str, dict] = {
    503: _err("The change could not be saved (disk full?) and was not applied: retry later")}
Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128, description=(
    "one per logical request, repeated on its retries: a repeat gets the first answer and is not applied again"))]


@contextmanager
def _errors() -> Iterator[None]:
    """Runtime errors as HTTP answers (`as_http_error`: 404, 422, 503); anything else stays a bug (500)."""
    try:
        yield
    except Exception as e:
        http = as_http_error(e)
        if http is None or http is e:
            raise
        raise http from e


@contextmanager
def _session(store: SessionStore, session_id: str):
    """The session under its lock, for routes that change nothing (changes go through `store.apply`)."""
    with _errors():
        entry = store.get(session_id)
        with entry.session.lock:
            yield entry.session


def create_app(
    artifact: str | Path,
    *,
    token: str | None = None,
    state_dir: str | Path | None = None,
    threads: int = 1,
    max_body_bytes: int = 1_000_000,
    max_sessions: int = 1024,
    max_sessions_per_client: int = 0,
    fsync_interval_ms: int = 0,
    snapshot_every: int = 200,
    session_ttl_s: float = 86400.0,
    body_timeout: float = 5.0,
    max_plan_work: int = 256 * 4 * 30,
    plan_slots: int = 2,
    docs: bool = False,
    runtime: Runtime | None = None,
    record: RecordSettings | None = None,
) -> FastAPI:
    """The HTTP API for one artifact; the model is loaded when the app starts (lifespan).

    Bodies over `max_body_bytes` get 413, bodies slower than `body_timeout` s 408 (`BodyGuard`); a planner with
    samples x iterations x horizon over `max_plan_work` gets 422; at most `plan_slots` acts plan at once.
    `docs`: serve Swagger UI at /docs and ReDoc at /redoc (they load their assets from a CDN). `runtime`: the
    artifact already loaded (and verified) with `load(artifact)`, else the lifespan loads it.
    """
    manifest = Manifest.load(artifact, verify=False)  # dims for the request schemas; verified in lifespan
    m: RequestModels = build_request_models(obs_dim=manifest.obs_dim, action_dim=manifest.action_dim,
                                            modes=sorted(manifest.modes), horizons=manifest.horizons,
                                            norm=manifest.normalization, max_plan_work=max_plan_work,
                                            references=manifest.reference is not None,
                                            reward_sources=("learned", "known") if manifest.default_cost.get("reward")
                                            else ("learned",))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = runtime or load(artifact, threads=threads)
        app.state.runtime = rt
        app.state.store = SessionStore(rt, state_dir=state_dir, max_sessions=max_sessions, ttl_s=session_ttl_s,
                                       fsync_interval_ms=fsync_interval_ms, snapshot_every=snapshot_every,
                                       max_per_client=max_sessions_per_client, recording=record)
        n = app.state.store.restore()
        if n:
            log.warning("restored %d session(s) from %s", n, state_dir)
        yield
        app.state.store.close()  # clean shutdown: plans and RNG states reach the disk too

    app = FastAPI(
        title="mbmrl runtime", version="1", lifespan=lifespan, docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        description="Adapt a meta-trained dynamics model per session and plan actions with MPC (DESIGN §5). "
                    "Numbers must be finite in float32; integer fields take JSON integers only (15, not 15.0); "
                    "a route answers a method it does not list with 405 and an Allow header.",
        exception_handlers={RequestValidationError: on_validation_error, StarletteHTTPException: on_http_error,
                            PlanningError: on_planning_error},
    )
    plan_slots_ = app.state.plan_slots = PlanSlots(plan_slots)
    deps = [Depends(HTTPBearer(auto_error=False, description="the server's token"))] if token else []
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, timeout=body_timeout)
    if token:  # added last: outermost, so a request without the token is refused before its body is read
        app.add_middleware(BearerAuth, token=token, public=("/healthz",) + DOC_PATHS * docs)

    @app.get("/healthz", response_model=Health, responses=LIMITS, tags=["health"])
    def healthz() -> dict:
        """Liveness probe; never needs the token."""
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelInfo, responses={**AUTH, **LIMITS}, tags=["model"], dependencies=deps)
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
            "default_planner": rt.default_planner.to_dict(),
            "default_guard": manifest_guard(mf).to_dict(), "horizons": rt.horizons, "family": mf.family,
            "format_version": FORMAT_VERSION, "precision": getattr(rt.dynamics, "precision", "fp32"),
            "int8": mf.int8, "default_gain": mf.default_gain}

    @app.post("/v1/sessions", status_code=201, response_model=SessionCreated, tags=["sessions"],
              responses={**AUTH, **BODY, 429: _err("Too many sessions: delete some first"), **UNAVAILABLE},
              dependencies=deps)
    def create_session(body: m.CreateSession, store: Store, request: Request,  # type: ignore[name-defined]
                       idempotency_key: Key = None) -> dict:
        """Start an adaptation session (prior belief, empty plan)."""
        check_plan_work(store.rt.default_planner.to_dict(), plan_patch(body.planner), max_plan_work)
        with _errors():
            try:
                session_id, session = store.create(
                    mode=body.mode, planner=plan_patch(body.planner), cost=plan_patch(body.cost),
                    seed=body.seed, task_params=body.task_params, key=idempotency_key,
                    reference=body.reference.spec() if getattr(body, "reference", None) else None, window=body.window,
                    guard=on_off_patch(body.guard), gain=on_off_patch(body.gain),
                    owner=request.client.host if request.client else None,
                )
            except TooManySessions as e:
                raise HTTPException(429, detail=str(e)) from e
        return {"session_id": session_id, "mode": session.mode}

    @app.get("/v1/sessions", response_model=SessionList, responses={**AUTH, **LIMITS}, tags=["sessions"],
             dependencies=deps)
    def list_sessions(store: Store) -> dict:
        """Ids of the live sessions."""
        return {"sessions": store.ids()}

    @app.get("/v1/sessions/{session_id}", response_model=SessionInfo, responses={**AUTH, **LIMITS, **NOT_FOUND},
             tags=["sessions"], dependencies=deps)
    def session_info(session_id: SessionId, store: Store) -> dict:
        """Mode, counters, planner, cost and how far the belief moved from the prior."""
        with _session(store, session_id) as s:
            return {"session_id": session_id, **s.info()}

    @app.post("/v1/sessions/{session_id}/observe", response_model=Observed, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND, **UNAVAILABLE}, dependencies=deps)
    async def observe(session_id: SessionId, body: m.ObserveRequest, store: Store,  # type: ignore[name-defined]
                      idempotency_key: Key = None) -> Response:
        """Fold transitions into the belief (all or none, journaled before the answer); `surprise` is the
        prior's error on each one."""
        ts = [t.model_dump() for t in body.transitions]
        with _errors():  # the model work runs off the event loop; the reply is encoded once, not re-validated
            return json_reply(await run_in_threadpool(
                store.apply, session_id, "observe", lambda s: {"surprise": s.observe_many(ts),
                                                               "n_observed": s.n_observed},
                key=idempotency_key, transitions=ts))

    @app.post("/v1/sessions/{session_id}/act", response_model=Acted, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND, **BUSY}, dependencies=deps)
    async def act(session_id: SessionId, body: m.ActRequest, store: Store,  # type: ignore[name-defined]
                  idempotency_key: Key = None) -> Response:
        """Plan from `obs` under the adapted model (MPC): the action to apply now and the plan."""
        def run(s: Session) -> dict:
            check_plan_work(s.planner.to_dict(), plan_patch(body.planner), max_plan_work)
            with plan_slots_.slot():
                r = s.act(body.obs, cost=plan_patch(body.cost), planner=plan_patch(body.planner), time=body.time)
            return acted(r)

        with _errors():
            return json_reply(await run_in_threadpool(store.apply, session_id, "act", run, key=idempotency_key))

    @app.post("/v1/sessions/{session_id}/step", response_model=Stepped, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND, **BUSY, **UNAVAILABLE}, dependencies=deps)
    async def step(session_id: SessionId, body: m.StepRequest, store: Store,  # type: ignore[name-defined]
                   idempotency_key: Key = None) -> Response:
        """One control step in one round trip: fold the previous transition (all or nothing, journaled), then
        plan from `obs`."""
        with _errors():
            return json_reply(await run_in_threadpool(apply_step, store, session_id, body, max_plan_work, plan_slots_,
                                                      idempotency_key))

    @app.post("/v1/sessions/{session_id}/predict", response_model=Predicted, tags=["sessions"],
              responses={**AUTH, **BODY, **NOT_FOUND, **DIVERGED}, dependencies=deps)
    def predict(session_id: SessionId, body: m.PredictRequest, store: Store) -> dict:  # type: ignore[name-defined]
        """Open-loop prediction under the adapted model; variance only in bayes mode."""
        with _session(store, session_id) as s:
            obs, var = s.predict(body.obs, body.actions)
            return {"predicted_obs": obs.tolist(), "predicted_var": None if var is None else var.tolist()}

    @app.post("/v1/sessions/{session_id}/reset", response_model=SessionInfo, tags=["sessions"],
              responses={**AUTH, **LIMITS, **NOT_FOUND, **UNAVAILABLE}, dependencies=deps)
    def reset(session_id: SessionId, store: Store, idempotency_key: Key = None) -> dict:
        """Forget everything observed: back to the prior belief and an empty plan."""
        def run(s: Session) -> dict:
            s.reset()
            return {"session_id": session_id, **s.info()}

        with _errors():
            return store.apply(session_id, "reset", run, key=idempotency_key)

    @app.put("/v1/sessions/{session_id}/reference", response_model=SessionInfo, tags=["sessions"],
             responses={**AUTH, **BODY, **NOT_FOUND, **UNAVAILABLE}, dependencies=deps,
             include_in_schema=manifest.reference is not None)
    def set_reference(session_id: SessionId, body: SetReference, store: Store, idempotency_key: Key = None) -> dict:
        """Hold a reference trajectory (null: drop it): every act/step then plans to follow it from the reference's
        clock (`time`, then one control period per step; a step's own `time` sets it)."""
        def run(s: Session) -> dict:
            s.set_reference(body.reference.spec() if body.reference else None, body.time)
            return {"session_id": session_id, **s.info()}

        with _errors():
            return store.apply(session_id, "reference", run, key=idempotency_key)

    @app.delete("/v1/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["sessions"],
                responses={**AUTH, **LIMITS, **NOT_FOUND}, dependencies=deps)
    def delete_session(session_id: SessionId, store: Store) -> None:
        """End a session and remove its persisted state."""
        with _errors():
            store.delete(session_id)

    add_stream_route(app, m.StepRequest, max_plan_work, plan_slots_)  # WS: the same steps, no per-step HTTP
    return app
