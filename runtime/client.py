"""A small HTTP client for `mbmrl serve` (stdlib + numpy only): what robot code imports.

`Client(url).new_session()` returns a `RemoteSession` that mirrors `mbmrl.runtime.Session`:

    client = Client("http://127.0.0.1:8000", token=None)
    s = client.new_session(mode="recurrent", seed=0)
    s.observe(obs, action, next_obs)          # -> surprise
    result = s.act(obs)                       # -> ActResult (numpy arrays)
    apply(result.action)

One persistent keep-alive connection per `Client` keeps latency low; it reconnects when the
server closed it, and sends the request once more with the same `Idempotency-Key` header (every POST
carries a fresh one), so a request the server already applied is not applied twice. Errors raise
`ApiError(status, detail)`.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .reference import Reference
from .types import ActResult, jsonable
from .ws import WebSocket, WebSocketClosed

# the server may close an idle keep-alive connection; these mean "reconnect and send again"
_STALE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError, ConnectionResetError)


class ApiError(Exception):
    """The server answered with an error status (4xx/5xx) or could not be reached (status 0)."""

    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {_describe(detail)}")


def _describe(detail: Any) -> str:
    """FastAPI's `detail`: a string, or a list of {loc, msg} validation issues."""
    if isinstance(detail, list):
        parts = []
        for issue in detail:
            if isinstance(issue, dict):
                loc = ".".join(str(p) for p in issue.get("loc", []) if p != "body")
                parts.append(f"{loc}: {issue.get('msg')}" if loc else str(issue.get("msg")))
            else:
                parts.append(str(issue))
        return "; ".join(parts)
    return str(detail)


def _plan_body(obs: Any, cost: dict | None, planner: dict | None, transition: dict | None = None,
               time: float | None = None) -> dict[str, Any]:
    """The body of act and step: obs, the cost and planner overrides and reference time that are set, and a step's
    transition."""
    body: dict[str, Any] = {"obs": obs} if time is None else {"obs": obs, "time": time}
    if transition is not None:
        body["transition"] = {k: v for k, v in transition.items() if v is not None}
    if cost:
        body["cost"] = cost
    if planner:
        body["planner"] = planner
    return body


def _reference_body(reference: Reference | dict | None) -> dict | None:  # a dict is sent as it is
    return reference.to_dict() if isinstance(reference, Reference) else reference


def _act_result(out: dict) -> ActResult:
    """An act or step reply as numpy arrays (a null cost, i.e. non-finite on the server, becomes NaN)."""
    cost = out["expected_cost"]
    return ActResult(
        action=np.asarray(out["action"], dtype=np.float32),  # (act_dim,)
        plan=np.asarray(out["plan"], dtype=np.float32),  # (H, act_dim)
        predicted_obs=np.asarray(out["predicted_obs"], dtype=np.float32),  # (H, obs_dim)
        expected_cost=float("nan") if cost is None else float(cost),
        fallback=bool(out.get("fallback", False)),  # the server kept its last finite plan
        samples_used=int(out.get("samples_used", 0)),
        plan_ms=float(out.get("plan_ms", 0.0)),
        guard=out.get("guard"),  # the model the plan used and the guard's running errors
    )


class Client:
    """Talks to one `mbmrl serve` server. Thread-safe (requests are serialized on one connection)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0):
        url = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if url.scheme != "http":
            raise ValueError(f"base_url must be http://host:port (plain HTTP), got {base_url!r}")
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- transport
    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; returns the decoded JSON (None for an empty reply) or raises ApiError."""
        try:
            payload = None if body is None else json.dumps(jsonable(body), allow_nan=False).encode()
        except ValueError as e:
            raise ValueError(f"{method} {path}: the request holds NaN or inf; send finite numbers") from e
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if method == "POST":  # one key per logical request, sent again on the retry: the server applies it once
            headers["Idempotency-Key"] = uuid.uuid4().hex
        with self._lock:
            status, data = self._send(method, self.prefix + path, payload, headers)
        text = data.decode("utf-8", errors="replace")
        try:
            decoded = json.loads(text) if text else None
        except json.JSONDecodeError:
            decoded = text
        if status >= 400:
            detail = decoded.get("detail", decoded) if isinstance(decoded, dict) else decoded
            raise ApiError(status, detail or http.client.responses.get(status, "error"))
        return decoded

    def _send(self, method: str, path: str, payload: bytes | None, headers: dict) -> tuple[int, bytes]:
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except _STALE as e:
                self.close()
                if not reused or attempt == 1:  # a fresh connection failed: the server is gone
                    raise ApiError(0, f"connection to {self.host}:{self.port} failed: {e}") from e
            except OSError as e:  # refused, unreachable, timed out
                self.close()
                raise ApiError(0, f"cannot reach {self.host}:{self.port}: {e}") from e
            except http.client.HTTPException as e:  # the answer broke off (the server died mid-reply)
                self.close()
                raise ApiError(0, f"no complete answer from {self.host}:{self.port}: {e!r}") from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ----------------------------------------------------------------- API
    def health(self) -> dict:
        """GET /healthz."""
        return self.request("GET", "/healthz")

    def model(self) -> dict:
        """Dims, names, bounds, modes, defaults and horizons of the served artifact."""
        return self.request("GET", "/v1/model")

    def sessions(self) -> list[str]:
        """Ids of the server's live sessions."""
        return self.request("GET", "/v1/sessions")["sessions"]

    def new_session(
        self,
        mode: str | None = None,
        planner: dict | None = None,
        cost: dict | None = None,
        seed: int | None = None,
        task_params: dict | None = None,
        reference: Reference | dict | None = None,
        window: int | None = None,
        guard: bool | dict | None = None, gain: bool | dict | None = None,
    ) -> RemoteSession:
        """Create a session on the server (see `mbmrl.runtime.Session`)."""
        body = {"mode": mode, "planner": planner, "cost": cost, "seed": seed, "window": window, "guard": guard,
                "gain": gain, "task_params": task_params, "reference": _reference_body(reference)}
        body = {k: v for k, v in body.items() if v is not None}
        created = self.request("POST", "/v1/sessions", body)
        return RemoteSession(self, created["session_id"], created["mode"])

    def session(self, session_id: str) -> RemoteSession:
        """Attach to an existing session (e.g. one restored from the server's --state-dir)."""
        return RemoteSession(self, session_id, self.request("GET", f"/v1/sessions/{session_id}")["mode"])


class RemoteSession:
    """A server-side session; the methods mirror `mbmrl.runtime.Session`."""

    def __init__(self, client: Client, session_id: str, mode: str):
        self.client = client
        self.session_id = session_id
        self.mode = mode
        self._path = f"/v1/sessions/{session_id}"

    def observe(self, obs, action, next_obs, reward=None) -> float:
        """Fold one transition; returns its surprise."""
        return self.observe_many([{"obs": obs, "action": action, "next_obs": next_obs, "reward": reward}])[0]

    def observe_many(self, transitions: list[dict]) -> list[float]:
        """Fold transitions in order (dicts with obs, action, next_obs, optional reward)."""
        body = [{k: v for k, v in t.items() if v is not None} for t in transitions]
        out = self.client.request("POST", f"{self._path}/observe", {"transitions": body})
        return [float("nan") if s is None else float(s) for s in out["surprise"]]

    def act(self, obs, cost: dict | None = None, planner: dict | None = None, time: float | None = None
            ) -> ActResult:
        """Plan from `obs`; the action to apply now and the plan behind it."""
        return _act_result(self.client.request("POST", f"{self._path}/act", _plan_body(obs, cost, planner, None, time)))

    def step(self, obs, transition: dict | None = None, cost: dict | None = None,
             planner: dict | None = None, time: float | None = None) -> tuple[float | None, ActResult]:
        """One control step in one round trip: fold the previous `transition` (None on the first step), plan
        from `obs`. Returns (its surprise or None, the act result), as `Session.step`."""
        body = _plan_body(obs, cost, planner, transition, time)
        out = self.client.request("POST", f"{self._path}/step", body)
        return (None if out["surprise"] is None else float(out["surprise"])), _act_result(out)

    def predict(self, obs, actions) -> tuple[np.ndarray, np.ndarray | None]:
        """Open-loop prediction: (T, obs_dim) and, in bayes mode, its variance (T, obs_dim)."""
        out = self.client.request("POST", f"{self._path}/predict", {"obs": obs, "actions": actions})
        var = out.get("predicted_var")
        return np.asarray(out["predicted_obs"], dtype=np.float32), (
            None if var is None else np.asarray(var, dtype=np.float64)
        )

    def set_reference(self, reference: Reference | dict | None, time: float = 0.0) -> dict:
        """Hold a reference trajectory (None: drop it), its clock at `time` s; returns the session's info."""
        return self.client.request("PUT", f"{self._path}/reference", {"reference": _reference_body(reference),
                                                                      "time": time})

    def reset(self) -> None:
        """Back to the prior belief and an empty plan."""
        self.client.request("POST", f"{self._path}/reset")

    def info(self) -> dict:
        """Mode, counters, planner and cost of this session."""
        return self.client.request("GET", self._path)

    def stream(self) -> StepStream:
        """A WebSocket to this session carrying `step` messages (needs the `websockets` package)."""
        return StepStream(self.client, self._path + "/stream")

    def close(self) -> None:
        """Delete the session on the server."""
        self.client.request("DELETE", self._path)

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StepStream:
    """`step` over one WebSocket: no per-step HTTP request. Errors raise `ApiError` and the stream goes on."""

    def __init__(self, client: Client, path: str):
        auth = {k: v for k, v in client.headers.items() if k == "Authorization"}
        try:
            self._ws = WebSocket(client.host, client.port, client.prefix + path, auth, client.timeout)
        except WebSocketClosed as e:
            raise ApiError(e.code, e.reason) from None
        except OSError as e:
            raise ApiError(0, f"cannot reach {client.host}:{client.port}: {e}") from None

    def step(self, obs, transition: dict | None = None, cost: dict | None = None,
             planner: dict | None = None, time: float | None = None) -> tuple[float | None, ActResult]:
        """As `RemoteSession.step`."""
        body = _plan_body(obs, cost, planner, transition, time)
        try:
            self._ws.send(json.dumps(jsonable(body), allow_nan=False))
            out = json.loads(self._ws.recv())
        except WebSocketClosed as e:
            raise ApiError(e.code if e.code >= 4000 else 0, str(e)) from None
        if out.get("status") != 200:
            raise ApiError(int(out.get("status", 0)), out.get("detail"))
        return (None if out["surprise"] is None else float(out["surprise"])), _act_result(out)

    def close(self) -> None:
        """Close the WebSocket."""
        self._ws.close()

    def __enter__(self) -> StepStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

