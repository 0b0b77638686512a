"""The HTTP API (DESIGN §5) against a real `mbmrl serve` (uvicorn) on loopback, and the stdlib client."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mbmrl.runtime.client import ApiError, Client

OBS = [1.0, 0.0, 0.0]
TRANSITION = {"obs": [1.0, 0.0, 0.0], "action": [0.5], "next_obs": [0.99, 0.05, 0.4], "reward": -0.1}
OBSERVE_ONE = {"transitions": [TRANSITION]}


# ------------------------------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mbmrl_cmd() -> list[str]:
    script = Path(sys.executable).with_name("mbmrl")
    return [str(script)] if script.exists() else [shutil.which("mbmrl") or "mbmrl"]


class Server:
    """A `mbmrl serve` subprocess; `call` speaks raw HTTP so tests control every byte."""

    def __init__(self, argv: list[str], port: int, token: str | None = None):
        env = {k: v for k, v in os.environ.items() if k != "MBMRL_TOKEN"}
        self.port, self.token = port, token
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not answer /healthz within 60 s")

    @classmethod
    def start(cls, artifact: Path, *flags: str, token: str | None = None) -> Server:
        port = free_port()
        extra = ["--token", token] if token else []
        return cls([*mbmrl_cmd(), "serve", str(artifact), "--port", str(port), *extra, *flags], port, token)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body=None, raw: str | bytes | None = None, headers=None,
             token: str | None = None):
        """-> (status, decoded JSON or text). `raw` is sent verbatim (for NaN tokens and broken JSON)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Content-Type": "application/json", **(headers or {})}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        try:
            conn.request(method, path, body=payload, headers=h)
            resp = conn.getresponse()
            text = resp.read().decode()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return resp.status, text

    def new_session(self, **body) -> str:
        status, out = self.call("POST", "/v1/sessions", body)
        assert status == 201, out
        return out["session_id"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def sid(server) -> str:
    return server.new_session(mode="bayes", seed=0)


# ------------------------------------------------------------------------------------------ happy path
def test_healthz_and_model(server):
    assert server.call("GET", "/healthz") == (200, {"status": "ok"})
    status, m = server.call("GET", "/v1/model")
    assert status == 200
    assert (m["obs_dim"], m["action_dim"], m["horizons"]) == (3, 1, [15, 30])
    assert set(m["modes"]) == {"none", "recurrent", "gradient", "bayes"}
    assert m["obs_names"] == ["cos_theta", "sin_theta", "theta_dot"] and m["family"] == "pendulum"
    assert m["default_mode"] in m["modes"] and m["default_planner"]["horizon"] in m["horizons"]
    assert len(m["default_cost"]["q"]) == 3 and m["format_version"] == 3


def test_round_trip(server):
    body = {"mode": "bayes", "seed": 3, "planner": {"samples": 64}}
    status, created = server.call("POST", "/v1/sessions", body)
    assert status == 201 and created["mode"] == "bayes"
    sid = created["session_id"]
    status, out = server.call("POST", f"/v1/sessions/{sid}/observe", {"transitions": [TRANSITION] * 3})
    assert status == 200 and out["n_observed"] == 3 and len(out["surprise"]) == 3
    assert all(np.isfinite(out["surprise"]))

    status, out = server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})
    assert status == 200
    action, plan = np.array(out["action"]), np.array(out["plan"])
    assert action.shape == (1,) and plan.shape == (15, 1) and np.array(out["predicted_obs"]).shape == (15, 3)
    assert np.all(plan >= -2.0) and np.all(plan <= 2.0) and -2.0 <= action[0] <= 2.0
    assert np.isfinite(out["expected_cost"])
    status, out = server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS, "planner": {"horizon": 30}})
    assert status == 200 and np.array(out["plan"]).shape == (30, 1)

    body = {"obs": OBS, "actions": [[0.1], [3], [-1]]}
    status, out = server.call("POST", f"/v1/sessions/{sid}/predict", body)
    assert status == 200
    assert np.array(out["predicted_obs"]).shape == (3, 3) and np.array(out["predicted_var"]).shape == (3, 3)

    status, info = server.call("GET", f"/v1/sessions/{sid}")
    assert status == 200 and info["session_id"] == sid and info["n_observed"] == 3 and info["mode"] == "bayes"
    assert info["planner"]["samples"] == 64
    assert sid in server.call("GET", "/v1/sessions")[1]["sessions"]

    status, info = server.call("POST", f"/v1/sessions/{sid}/reset")
    assert status == 200 and info["n_observed"] == 0 and info["w_shift"] == 0.0
    assert server.call("DELETE", f"/v1/sessions/{sid}")[0] == 204
    assert server.call("GET", f"/v1/sessions/{sid}")[0] == 404
    assert sid not in server.call("GET", "/v1/sessions")[1]["sessions"]


@pytest.mark.parametrize("mode", ["none", "recurrent", "gradient", "bayes"])
def test_every_mode_serves(server, mode):
    sid = server.new_session(mode=mode, seed=1, planner={"samples": 32})
    assert server.call("POST", f"/v1/sessions/{sid}/observe", {"transitions": [TRANSITION]})[0] == 200
    assert server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0] == 200
    status, out = server.call("POST", f"/v1/sessions/{sid}/predict", {"obs": OBS, "actions": [[0.0]]})
    assert status == 200 and (out["predicted_var"] is None) == (mode != "bayes")
    server.call("DELETE", f"/v1/sessions/{sid}")


def test_ints_are_numbers_and_per_request_cost(server, sid):
    status, out = server.call("POST", f"/v1/sessions/{sid}/act", {
        "obs": [1, 0, 0], "cost": {"target": [[1, 0, 0]] * 20, "q": [1, 1, 0]}, "planner": {"method": "cem"},
    })
    assert status == 200, out
    status, created = server.call("POST", "/v1/sessions", {"mode": "bayes", "cost": {"uncertainty_weight": 2}})
    assert status == 201, created
    status, out = server.call("POST", f"/v1/sessions/{created['session_id']}/act", {"obs": [1, 0, 0]})
    assert status == 200 and len(out["action"]) == 1, out


# ------------------------------------------------------------------------------------------ bad input
NON_FINITE = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize("route,template,field", [
    ("act", '{"obs": [%s, 0, 0]}', "obs"),
    ("act", '{"obs": [1, 0, 0], "cost": {"q": [1, %s, 1]}}', "q"),
    ("act", '{"obs": [1, 0, 0], "planner": {"temperature": %s}}', "temperature"),
    ("observe", '{"transitions": [{"obs": [1, 0, 0], "action": [0], "next_obs": [1, 0, 0], "reward": %s}]}',
     "reward"),
    ("predict", '{"obs": [1, 0, 0], "actions": [[0], [%s]]}', "actions"),
])
def test_non_finite_numbers_are_422_not_500(server, sid, route, template, field, token):
    status, out = server.call("POST", f"/v1/sessions/{sid}/{route}", raw=template % token)
    assert status == 422, out
    text = json.dumps(out)
    assert field in text and "finite" in text
    assert token not in text and "nan" not in text.lower().replace("finite", "")  # input not echoed


@pytest.mark.parametrize("route,body,field,expected", [
    ("act", {"obs": [1, 0]}, "obs", "3"),
    ("act", {"obs": [1, 0, 0, 0]}, "obs", "3"),
    ("act", {"obs": [True, 0, 0]}, "obs", "number"),
    ("act", {"obs": ["1.5", 0, 0]}, "obs", "number"),
    ("act", {"obs": "1,0,0"}, "obs", "list"),
    ("act", {}, "obs", "required"),
    ("act", {"obs": OBS, "extra": 1}, "extra", "not permitted"),
    ("act", {"obs": OBS, "cost": {"target": [1, 2]}}, "target", "(3,)"),
    ("act", {"obs": OBS, "cost": {"target": [[1, 2, 3], [1, 2]]}}, "target", "(H, 3)"),
    ("act", {"obs": OBS, "cost": {"q": [1, -1, 0]}}, "q", "greater than or equal to 0"),
    ("act", {"obs": OBS, "cost": {"r": [1, 1]}}, "r", "1"),
    ("act", {"obs": OBS, "cost": {"terminal_weight": "1"}}, "terminal_weight", "number"),
    ("act", {"obs": OBS, "cost": {"linear": [1, 2]}}, "linear", "3"),
    ("act", {"obs": OBS, "cost": {"reward_source": "known"}}, "reward_source", "learned"),  # pendulum: learned only
    ("act", {"obs": OBS, "planner": {"horizon": 20}}, "horizon", "15 or 30"),
    ("act", {"obs": OBS, "planner": {"samples": 8193}}, "samples", "8192"),
    ("act", {"obs": OBS, "planner": {"samples": 1.5}}, "samples", "integer"),
    ("act", {"obs": OBS, "planner": {"iterations": 21}}, "iterations", "20"),
    ("act", {"obs": OBS, "planner": {"method": "cmaes"}}, "method", "mppi"),
    ("act", {"obs": OBS, "planner": {"elite_frac": 1.5}}, "elite_frac", "1"),
    ("act", {"obs": OBS, "planner": {"gamma": 0.9}}, "gamma", "not permitted"),
    ("act", {"obs": [1e300, 0, 0]}, "obs", "finite"),  # inf in float32: the runtime's ValueError
    ("observe", {"transitions": []}, "transitions", "at least 1"),
    ("observe", {"transitions": [TRANSITION] * 1001}, "transitions", "1000"),
    ("observe", {"transitions": [TRANSITION, {**TRANSITION, "action": [0, 1]}]}, "action", "1"),
    ("observe", {"transitions": [{**TRANSITION, "next_obs": None}]}, "next_obs", "list"),
    ("observe", {"transitions": [{**TRANSITION, "reward": False}]}, "reward", "number"),
    ("predict", {"obs": OBS, "actions": []}, "actions", "at least 1"),
    ("predict", {"obs": OBS, "actions": [[0.0, 1.0]]}, "actions", "1"),
    ("predict", {"obs": OBS, "actions": [0.0]}, "actions", "list"),
])
def test_bad_input_is_422_naming_the_field(server, sid, route, body, field, expected):
    status, out = server.call("POST", f"/v1/sessions/{sid}/{route}", body)
    assert status == 422, out
    text = json.dumps(out)
    assert field in text and expected in text, text


@pytest.mark.parametrize("body,field", [
    ({"mode": "oracle"}, "mode"),
    ({"mode": "banana"}, "mode"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),  # 1.0 is an integer (JSON Schema): accepted
    ({"planner": {"horizon": 7}}, "horizon"),
    ({"cost": {"q": [1, 1]}}, "q"),
    ({"cost": {"uncertainty_weight": -1}}, "uncertainty_weight"),
    ({"task_params": {"mass": "heavy"}}, "mass"),
    ({"bogus": True}, "bogus"),
    ({"guard": {"hysteresis": 1}}, "hysteresis"),
    ({"guard": {"horizon": 0}}, "horizon"),
    ({"guard": {"enter": 0.5}}, "enter"),
    ({"guard": "yes"}, "guard"),
])
def test_bad_session_settings_are_422(server, body, field):
    status, out = server.call("POST", "/v1/sessions", body)
    assert status == 422 and field in json.dumps(out), out


def test_malformed_json_and_wrong_type_are_4xx(server, sid):
    assert server.call("POST", f"/v1/sessions/{sid}/act", raw='{"obs": [1, 0')[0] == 422
    assert server.call("POST", f"/v1/sessions/{sid}/act", raw="[1, 2, 3]")[0] == 422
    assert server.call("POST", f"/v1/sessions/{sid}/act", raw="[" * 50_000 + "]" * 50_000)[0] in (400, 422)
    text_plain = {"Content-Type": "text/plain"}
    assert server.call("POST", f"/v1/sessions/{sid}/act", raw="obs=1", headers=text_plain)[0] == 422


@pytest.mark.parametrize("method,suffix", [
    ("GET", ""), ("DELETE", ""), ("POST", "/reset"),
    ("POST", "/act"), ("POST", "/observe"), ("POST", "/predict"),
])
def test_unknown_session_is_404(server, method, suffix):
    body = {"/act": {"obs": OBS}, "/observe": {"transitions": [TRANSITION]},
            "/predict": {"obs": OBS, "actions": [[0]]}}.get(suffix)
    status, out = server.call(method, f"/v1/sessions/0123456789abcdef0123456789abcdef{suffix}", body)
    assert status == 404 and "no session" in out["detail"]


def test_body_over_the_limit_is_413_with_content_length_and_chunked(server, sid):
    big = json.dumps({"transitions": [TRANSITION] * 20_000}).encode()  # ~1.6 MB > default 1 MB
    assert len(big) > 1_000_000
    assert server.call("POST", f"/v1/sessions/{sid}/observe", raw=big)[0] == 413

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    conn.request("POST", f"/v1/sessions/{sid}/observe", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    assert server.call("GET", f"/v1/sessions/{sid}")[0] == 200  # the session is untouched


def test_openapi_declares_error_statuses(server):
    status, schema = server.call("GET", "/openapi.json")
    assert status == 200
    paths = schema["paths"]
    for route in ("act", "observe", "predict"):
        responses = paths[f"/v1/sessions/{{session_id}}/{route}"]["post"]["responses"]
        assert {"401", "404", "413", "422"} <= set(responses)
    assert {"404"} <= set(paths["/v1/sessions/{session_id}"]["delete"]["responses"])
    assert {"413", "422", "429"} <= set(paths["/v1/sessions"]["post"]["responses"])
    obs = schema["components"]["schemas"]["Transition"]["properties"]["obs"]
    assert obs["minItems"] == obs["maxItems"] == 3
    assert server.call("GET", "/docs")[0] == 404  # off by default (CDN assets): `--docs` turns it on


def test_concurrent_requests_on_one_session(server):
    sid = server.new_session(mode="gradient", seed=2, planner={"samples": 32})
    statuses: list[int] = []

    def work():
        for _ in range(5):
            statuses.append(server.call("POST", f"/v1/sessions/{sid}/observe", OBSERVE_ONE)[0])
            statuses.append(server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    assert server.call("GET", f"/v1/sessions/{sid}")[1]["n_observed"] == 20


# ------------------------------------------------------------------------------------------ oracle artifact
def test_oracle_artifact_needs_task_params(tiny_artifact):
    s = Server.start(tiny_artifact / "oracle")
    try:
        status, out = s.call("POST", "/v1/sessions", {})
        assert status == 422 and "task_params" in json.dumps(out)
        status, out = s.call("POST", "/v1/sessions", {"task_params": {"mass": 1.0}})
        assert status == 422 and "length" in json.dumps(out)
        sid = s.new_session(task_params={"mass": 1.2, "length": 0.8})
        assert s.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0] == 200
        assert s.call("POST", "/v1/sessions", {"mode": "recurrent"})[0] == 422
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ token, limits
def test_token_and_session_limit(tiny_artifact):
    s = Server.start(tiny_artifact, "--max-sessions", "2", token="s3cret-t0ken")
    try:
        assert s.call("GET", "/healthz", token="") == (200, {"status": "ok"})
        for token in ("", "wrong", "s3cret-t0ke", "s3cret-t0ken-and-more"):
            status, out = s.call("GET", "/v1/model", token=token)
            assert status == 401 and "Bearer" in out["detail"]
        assert s.call("POST", "/v1/sessions", {}, token="")[0] == 401
        assert s.call("GET", "/openapi.json", token="")[0] == 401
        assert s.call("GET", "/v1/model")[0] == 200
        s.new_session()
        s.new_session()
        status, out = s.call("POST", "/v1/sessions", {})
        assert status == 429 and "2" in out["detail"]

        assert Client(s.url, token="s3cret-t0ken").model()["obs_dim"] == 3
        with pytest.raises(ApiError) as e:
            Client(s.url, token="nope").model()
        assert e.value.status == 401 and "Bearer" in str(e.value)
        assert Client(s.url).health() == {"status": "ok"}
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ persistence
def test_state_dir_restores_sessions_exactly(tiny_artifact, tmp_path):
    state = tmp_path / "state"
    rng = np.random.default_rng(0)
    transitions = [
        {"obs": rng.normal(size=3).tolist(), "action": [float(rng.uniform(-2, 2))],
         "next_obs": rng.normal(size=3).tolist(), "reward": float(rng.normal())}
        for _ in range(12)
    ]
    a = Server.start(tiny_artifact, "--state-dir", str(state))
    expected, keep = {}, {}
    try:
        for mode in ("none", "recurrent", "gradient", "bayes"):
            twins = [a.new_session(mode=mode, seed=5, planner={"samples": 64}) for _ in range(2)]
            for sid in twins:
                assert a.call("POST", f"/v1/sessions/{sid}/observe", {"transitions": transitions})[0] == 200
                assert a.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0] == 200
            # the twin's belief is what the restored session must have (act's plan and RNG reach the disk
            # with the next snapshot: exact after a clean shutdown, see test_clean_shutdown_keeps_plans_and_rng)
            expected[mode] = {**a.call("GET", f"/v1/sessions/{twins[1]}")[1], "session_id": twins[0]}
            assert a.call("DELETE", f"/v1/sessions/{twins[1]}")[0] == 204
            keep[mode] = twins[0]
    finally:
        a.stop(signal.SIGKILL)  # a crash: state must already be on disk
    assert sorted(p.stem for p in state.glob("*.npz")) == sorted(keep.values())

    b = Server.start(tiny_artifact, "--state-dir", str(state))
    try:
        assert sorted(b.call("GET", "/v1/sessions")[1]["sessions"]) == sorted(keep.values())
        for mode, sid in keep.items():
            info = b.call("GET", f"/v1/sessions/{sid}")[1]
            assert info["mode"] == mode and info["n_observed"] == 12 and info["planner"]["samples"] == 64
            assert info == expected[mode], mode
            assert b.call("POST", f"/v1/sessions/{sid}/act", {"obs": [0.0, 1.0, 0.5]})[0] == 200
        assert b.call("DELETE", f"/v1/sessions/{keep['bayes']}")[0] == 204
        assert not (state / f"{keep['bayes']}.npz").exists()
    finally:
        b.stop()


# ------------------------------------------------------------------------------------------ client
def test_client_round_trip_with_numpy(server):
    client = Client(server.url, timeout=30)
    assert client.health() == {"status": "ok"} and client.model()["action_dim"] == 1
    with client.new_session(mode="gradient", seed=0, planner={"samples": 64}) as s:
        obs, next_obs = np.array(OBS), np.array([0.99, 0.05, 0.4])
        surprise = s.observe(obs, np.array([0.5], dtype=np.float32), next_obs, -0.1)
        assert isinstance(surprise, float) and np.isfinite(surprise)
        assert len(s.observe_many([TRANSITION, {**TRANSITION, "reward": None}])) == 2
        result = s.act(np.array(OBS), cost={"target": np.array([1.0, 0.0, 0.0])}, planner={"horizon": 30})
        assert result.action.shape == (1,) and result.plan.shape == (30, 1)
        assert result.predicted_obs.shape == (30, 3)
        assert np.all(np.abs(result.plan) <= 2.0) and np.isfinite(result.expected_cost)
        pred, var = s.predict(OBS, np.zeros((4, 1)))
        assert pred.shape == (4, 3) and var is None
        assert s.info()["n_observed"] == 3
        s.reset()
        assert s.info()["n_observed"] == 0
        assert client.session(s.session_id).mode == "gradient"
    assert s.session_id not in client.sessions()
    conn = client._conn
    client.model()
    assert client._conn is conn  # one persistent connection


def test_client_errors_are_api_errors(server, tiny_artifact):
    client = Client(server.url)
    s = client.new_session()
    with pytest.raises(ApiError) as e:
        s.act([1.0, 0.0])
    assert e.value.status == 422 and "obs" in str(e.value) and "3" in str(e.value)
    with pytest.raises(ApiError) as e:
        client.new_session(mode="oracle")
    assert e.value.status == 422 and "mode" in str(e.value)
    with pytest.raises(ValueError, match="finite"):
        s.act([float("nan"), 0.0, 0.0])
    s.close()
    with pytest.raises(ApiError) as e:
        s.info()
    assert e.value.status == 404 and "no session" in str(e.value)
    with pytest.raises(ApiError) as e:
        Client(f"http://127.0.0.1:{free_port()}", timeout=2).health()
    assert e.value.status == 0


def test_client_reconnects_after_the_connection_drops(server):
    client = Client(server.url)
    client.health()
    client._conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server had closed an idle keep-alive connection
    assert client.health() == {"status": "ok"}


def test_clean_shutdown_keeps_plans_and_rng(tiny_artifact, tmp_path):
    state = tmp_path / "state"
    a = Server.start(tiny_artifact, "--state-dir", str(state))
    try:
        twins = [a.new_session(mode="bayes", seed=5, planner={"samples": 64}) for _ in range(2)]
        for sid in twins:
            assert a.call("POST", f"/v1/sessions/{sid}/observe", {"transitions": [TRANSITION] * 3})[0] == 200
            assert a.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0] == 200
        expected = a.call("POST", f"/v1/sessions/{twins[1]}/act", {"obs": [0.0, 1.0, 0.5]})[1]
        expected.pop("plan_ms")  # wall time: the one field that may differ
    finally:
        a.stop()  # SIGTERM: a clean shutdown snapshots every session, plan and RNG included
    b = Server.start(tiny_artifact, "--state-dir", str(state))
    try:
        got = b.call("POST", f"/v1/sessions/{twins[0]}/act", {"obs": [0.0, 1.0, 0.5]})[1]
        assert {k: v for k, v in got.items() if k != "plan_ms"} == expected
    finally:
        b.stop()
