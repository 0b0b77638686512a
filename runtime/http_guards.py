"""What keeps one client from hurting the others: a body limit and read timeout of our own (ASGI middleware,
independent of the FastAPI release), bounded 422 bodies, and a compute budget and concurrency bound on planning.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from .api_models import MAX_ERRORS
from .session_store import PersistError, UnknownSession
from .types import PlanningError

MAX_MSG = 300  # characters of one validation message (ours never echo input, this bounds the rest)
NOT_JSON = "the body is not UTF-8 JSON (or is nested too deeply)"


LINGER = 4  # before a 413, read and drop up to this many times the limit of the rest of the body


class BodyGuard:
    """ASGI middleware: read each request body before the app does, at most `max_bytes` within `timeout` s.

    A Content-Length over the limit gets 413 before a byte of the body is read; a chunked body gets 413 as
    soon as its count passes the limit; a body that has not fully arrived after `timeout` seconds (a slow or
    lying client) gets 408. Both close the connection. The app then sees the whole body at once.

    Before a 413 the rest of the body is read and dropped (up to LINGER x the limit, within the timeout), so
    a client still sending it gets to read the answer instead of a broken pipe.
    """

    def __init__(self, app: Any, max_bytes: int, timeout: float):
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """ASGI entry: buffer the body within the limits, then pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline, size, chunks = loop.time() + self.timeout, 0, []
        too_large = f"request body over {self.max_bytes} bytes (--max-body-bytes)"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= LINGER * self.max_bytes:
                await _drain(receive, LINGER * self.max_bytes, deadline)
            await _close_with(413, too_large, scope, send)
            return
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                await _close_with(408, f"request body not received within {self.timeout:g} s", scope, send)
                return
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, LINGER * self.max_bytes - size, deadline)
                await _close_with(413, too_large, scope, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, when the client goes away

        await self.app(scope, replay, send)


async def _drain(receive: Any, limit: int, deadline: float) -> None:
    """Read and drop the rest of a request body: at most `limit` bytes, until the loop time `deadline`."""
    loop = asyncio.get_running_loop()
    while limit > 0:
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
        except asyncio.TimeoutError:
            return
        limit -= len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _close_with(status: int, detail: str, scope: dict, send: Any) -> None:
    """Answer `status` and close the connection (the rest of the body is never read)."""
    response = JSONResponse({"detail": detail}, status, headers={"Connection": "close"})
    await response(scope, _no_body, send)


async def _no_body() -> dict:
    return {"type": "http.disconnect"}


def issue(e: dict) -> dict:
    """A validation error without `input`/`ctx` (never echo client input), its message bounded."""
    return {"loc": [p for p in e.get("loc", ()) if isinstance(p, str | int)],
            "msg": str(e.get("msg", "invalid"))[:MAX_MSG], "type": str(e.get("type", "value_error"))}


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing the first MAX_ERRORS problems, without `input`/`ctx`: never echo (non-finite) client input."""
    errors = exc.errors()
    detail = [issue(e) for e in errors[:MAX_ERRORS]]
    return JSONResponse({"detail": detail, "error_count": len(errors)}, 422)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> Any:
    """FastAPI's 400 for a body it cannot decode (not UTF-8, nested too deeply) is a documented 422; a 405's
    Allow header lists every method of the path (Starlette lists only those of the first route matching it)."""
    if exc.status_code == 400:
        issue = {"loc": ["body"], "msg": NOT_JSON, "type": "json_invalid"}
        return JSONResponse({"detail": [issue], "error_count": 1}, 422)
    if exc.status_code == 405:
        methods = {m for r in request.app.router.routes if isinstance(r, BaseRoute)
                   and r.matches(request.scope)[0] is not Match.NONE for m in getattr(r, "methods", None) or ()}
        return JSONResponse({"detail": "Method Not Allowed"}, 405, headers={"Allow": ", ".join(sorted(methods))})
    return await http_exception_handler(request, exc)


def as_http_error(e: BaseException) -> HTTPException | None:
    """The answer to an error the runtime raised for a request (one table for the HTTP routes and the stream):
    unknown session 404, bad input (ValueError) 422, a change not saved or no finite plan 503; None: a bug."""
    if isinstance(e, HTTPException):
        return e
    if isinstance(e, UnknownSession):
        return HTTPException(404, detail=str(e))
    if isinstance(e, PersistError):
        return HTTPException(503, detail=str(e), headers={"Retry-After": "1"})
    if isinstance(e, PlanningError):
        return HTTPException(503, detail=str(e))
    if isinstance(e, ValueError):
        return HTTPException(422, detail=[{"loc": ["body"], "msg": str(e), "type": "value_error"}])
    return None


def plan_patch(model: Any) -> dict | None:
    """The fields of a planner or cost patch a client set (null means "keep the current value")."""
    return model.model_dump(exclude_none=True) if model is not None else None


def on_off_patch(model: Any) -> bool | dict | None:
    """A setting that is on, off or a patch of settings (`guard`, `gain`): the bool, or the fields a client set."""
    return model if isinstance(model, bool) else plan_patch(model)


async def on_planning_error(request: Request, exc: Exception) -> JSONResponse:
    """`PlanningError`: the model has no finite answer for this session's state (503: reset it, or retry)."""
    return JSONResponse({"detail": str(exc)}, 503)


def check_plan_work(planner: dict, patch: dict | None, limit: int) -> None:
    """422 when samples x iterations x horizon of the effective planner (`planner` updated by `patch`) > limit."""
    p = {**planner, **(patch or {})}
    work = p["samples"] * p["iterations"] * p["horizon"]
    if work > limit:
        given = sorted(set(patch or {}) & {"samples", "iterations", "horizon"})
        loc = ["body", "planner", given[0]] if len(given) == 1 else ["body", "planner"]
        msg = (f"planner.samples x planner.iterations x planner.horizon = {p['samples']} x {p['iterations']} x "
               f"{p['horizon']} = {work} is over this server's --max-plan-work {limit}: lower one of them")
        raise HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "plan_work"}])


class PlanSlots:
    """At most `n` acts plan at once (bounding CPU and memory); a request waits up to `wait` s, then 503."""

    def __init__(self, n: int, wait: float = 10.0):
        self._slots, self.n, self.wait = threading.BoundedSemaphore(n), n, wait

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one planning slot (from a worker thread: this blocks)."""
        if not self._slots.acquire(timeout=self.wait):
            raise HTTPException(503, detail=f"all {self.n} planning slots stayed busy for {self.wait:g} s: retry",
                                headers={"Retry-After": "1"})
        try:
            yield
        finally:
            self._slots.release()


UNAUTHORIZED = "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'"
DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


def _authorized(header: bytes | None, token: bytes) -> bool:
    if not header or not header[:7].lower() == b"bearer ":
        return False
    return secrets.compare_digest(header[7:].strip(), token)


class BearerAuth:
    """ASGI middleware: every path but the `public` ones needs `Authorization: Bearer <token>` (checked first).

    /healthz is public; with --docs so are the docs pages and the schema (a browser cannot send the header).
    """

    def __init__(self, app, token: str, public: tuple[str, ...] = ("/healthz",)):
        self.app = app
        self.token = token.encode()
        self.public = set(public)

    async def __call__(self, scope, receive, send):
        """ASGI entry: reject a request without the right token before it reaches the app."""
        if scope["type"] in ("http", "websocket") and scope["path"] not in self.public:
            header = dict(scope["headers"]).get(b"authorization")
            if not _authorized(header, self.token):
                if scope["type"] == "websocket":  # closing before accept: the handshake gets HTTP 403
                    await send({"type": "websocket.close", "code": 1008, "reason": UNAUTHORIZED})
                    return
                response = JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
