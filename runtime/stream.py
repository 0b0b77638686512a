"""The control stream: `WS /v1/sessions/{id}/stream` carries the same step messages as `POST .../step`.

Each text message is a StepRequest (JSON: `obs`, optional `transition`, `cost`, `planner`, and an optional
`request_id`, the stream's idempotency key); each answer is the step reply with `"status": 200`, or
`{"status": 4xx|5xx, "detail": ...}` with the same validation, limits and errors as HTTP. A bad message gets
its error and the stream goes on. Auth: the handshake carries the bearer token (checked by `BearerAuth`).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from .api_models import MAX_ERRORS, acted
from .http_guards import PlanSlots, as_http_error, check_plan_work, issue, plan_patch
from .session import Session
from .session_store import SessionStore, UnknownSession
from .wire import encode_json


def apply_step(store: SessionStore, session_id: str, body: Any, max_plan_work: int, slots: PlanSlots,
               key: str | None = None) -> dict:
    """Fold `body.transition` and plan from `body.obs` (all or nothing, journaled): the step reply.

    Raises what the HTTP route maps to statuses: HTTPException (422 budget, 503 busy), ValueError (422),
    PlanningError and PersistError (503), UnknownSession (404).
    """
    ts = [body.transition.model_dump()] if body.transition is not None else []

    def run(s: Session) -> dict:
        check_plan_work(s.planner.to_dict(), plan_patch(body.planner), max_plan_work)
        with slots.slot():
            surprise, r = s.step(body.obs, ts[0] if ts else None, plan_patch(body.cost), plan_patch(body.planner),
                                 time=body.time)
        return {**acted(r), "surprise": surprise, "n_observed": s.n_observed}

    return store.apply(session_id, "step", run, key=key, transitions=ts)


def _answer(store: SessionStore, session_id: str, text: str, request_model: Any, max_plan_work: int,
            slots: PlanSlots) -> dict:
    """One message's reply, never an exception: errors become {"status", "detail"}."""
    try:
        raw = json.loads(text)
        key = raw.pop("request_id", None) if isinstance(raw, dict) else None
        body = request_model.model_validate(raw)
        return {"status": 200, **apply_step(store, session_id, body, max_plan_work, slots,
                                            key=None if key is None else str(key)[:128])}
    except (json.JSONDecodeError, RecursionError):
        return {"status": 422, "detail": [{"loc": ["body"], "msg": "not JSON", "type": "json_invalid"}]}
    except ValidationError as e:
        errors = e.errors()
        return {"status": 422, "detail": [issue(dict(x)) for x in errors[:MAX_ERRORS]], "error_count": len(errors)}
    except Exception as e:  # the HTTP routes' table: 404, 422, 503
        http = as_http_error(e)
        if http is None:
            raise
        return {"status": http.status_code, "detail": http.detail}


class StepWorker:
    """One thread for one stream: its steps run in order, off the event loop, with one cheap hand-off each way
    (a queue in, `call_soon_threadsafe` out) instead of a thread-pool round trip per message."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._work, daemon=True, name="mbmrl-stream").start()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            fn, future, loop = job
            try:
                result, error = fn(), None
            except BaseException as e:  # handed to the awaiting coroutine, which raises it
                result, error = None, e
            loop.call_soon_threadsafe(_settle, future, result, error)

    async def run(self, fn: Callable[[], Any]) -> Any:
        """fn() on this stream's thread; the event loop serves other connections meanwhile."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.jobs.put((fn, future, loop))
        return await future

    def close(self) -> None:
        """Let the thread end after the job it is on."""
        self.jobs.put(None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if not future.cancelled():
        future.set_exception(error) if error is not None else future.set_result(result)


def add_stream_route(app: FastAPI, request_model: Any, max_plan_work: int, slots: PlanSlots) -> None:
    """Register `WS /v1/sessions/{session_id}/stream` on `app`."""

    @app.websocket("/v1/sessions/{session_id}/stream")
    async def stream(ws: WebSocket, session_id: str) -> None:
        store: SessionStore = ws.app.state.store
        try:
            store.get(session_id[:64])
        except UnknownSession:
            await ws.close(code=4404, reason="no such session: create one with POST /v1/sessions")
            return
        await ws.accept()
        worker = StepWorker()
        try:
            while True:
                text = await ws.receive_text()
                reply = await worker.run(partial(_answer, store, session_id, text, request_model, max_plan_work,
                                                 slots))
                await ws.send_text(encode_json(reply).decode())
        except WebSocketDisconnect:
            return
        finally:
            worker.close()
