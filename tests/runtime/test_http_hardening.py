"""A server a robot can trust: planner limits, float32-exact schemas, cheap rejection of huge bodies, our own
body limit and read timeout, safe server defaults, honest HTTP details, and a schema schemathesis can't fault.

Every test runs a real `mbmrl serve` (tests/runtime/test_server.py's `Server`) on the tiny artifact.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_server import OBS, TRANSITION, Server, free_port, mbmrl_cmd

LIMIT = 256 * 4 * 30  # the default --max-plan-work


@pytest.fixture(scope="module")
def sid(server) -> str:
    return server.new_session(mode="bayes", seed=0, planner={"samples": 64})


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> tuple[bytes, float, bool]:
    """Send `head` + `body` on a raw socket and read until the server closes (or `timeout`):
    -> (bytes received, seconds until the first byte, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        t0 = time.monotonic()
        s.sendall(head + body)
        data, first, closed = b"", None, False
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                first = first if first is not None else time.monotonic() - t0
                data += chunk
        except TimeoutError:
            pass
    return data, first if first is not None else float("inf"), closed


def post_head(path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n").encode()


# ------------------------------------------------------------------------------------------ 1. planner limits
def test_planner_settings_that_underflow_are_422_and_the_smallest_allowed_give_a_finite_action(server, sid):
    for planner, field in (({"temperature": 5e-324}, "temperature"), ({"noise_scale": 1e-4}, "noise_scale"),
                           ({"temperature": 0}, "temperature")):
        status, out = server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS, "planner": planner})
        assert status == 422 and field in json.dumps(out), out
    status, out = server.call("POST", f"/v1/sessions/{sid}/act",
                              {"obs": OBS, "planner": {"temperature": 1e-3, "noise_scale": 1e-3}})
    assert status == 200 and np.isfinite(out["action"]).all() and np.isfinite(out["plan"]).all()
    assert out["fallback"] is False


def test_planner_work_over_the_budget_is_422_naming_the_fields(server):
    status, out = server.call("POST", "/v1/sessions", {"planner": {"samples": 8192, "iterations": 20, "horizon": 30}})
    assert status == 422, out
    msg = out["detail"][0]["msg"]
    assert out["detail"][0]["type"] == "plan_work" and "samples" in msg and "max-plan-work" in msg and str(LIMIT) in msg
    sid = server.new_session(planner={"samples": 1024})  # 1024 x 1 x 15
    assert server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS, "planner": {"horizon": 30}})[0] == 200
    status, out = server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS, "planner": {"iterations": 2,
                                                                                            "horizon": 30}})
    assert status == 422 and out["detail"][0]["loc"] == ["body", "planner"], out  # the session's samples count
    status, out = server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS, "planner": {"iterations": 3}})
    assert status == 422 and out["detail"][0]["loc"] == ["body", "planner", "iterations"], out
    schema = server.call("GET", "/openapi.json")[1]["components"]["schemas"]["PlannerPatch"]
    assert schema["x-max-plan-work"] == LIMIT and "samples x iterations x horizon" in schema["description"]


def test_24_concurrent_maximum_size_acts_stay_under_300_mb(tiny_artifact):
    s = Server.start(tiny_artifact)
    try:
        planner = {"samples": LIMIT // 30, "iterations": 1, "horizon": 30}  # exactly the budget
        sids = [s.new_session(seed=i, planner=planner) for i in range(24)]
        codes: list[int] = []

        def work(sid: str) -> None:
            for _ in range(3):
                codes.append(s.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0])

        threads = [threading.Thread(target=work, args=(sid,)) for sid in sids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = dict(line.split(":", 1) for line in Path(f"/proc/{s.proc.pid}/status").read_text().splitlines())
        peak_mb = int(status["VmHWM"].split()[0]) / 1024
        assert codes == [200] * 72 and peak_mb < 300, (sorted(set(codes)), peak_mb)
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ 2. numbers and types
@pytest.mark.parametrize("route,body,field", [
    ("act", {"obs": [1e39, 0, 0]}, "obs"),
    ("act", {"obs": [1e6, 0, 0]}, "obs"),  # finite in float32, but 1e4 training std devs away: schema bound
    ("act", {"obs": OBS, "cost": {"target": [[1e39, 0, 0]]}}, "target"),
    ("act", {"obs": OBS, "cost": {"target": []}}, "target"),
    ("act", {"obs": OBS, "cost": {"q": [1e39, 0, 0]}}, "q"),
    ("act", {"obs": OBS, "planner": {"horizon": 15.5}}, "horizon"),
    ("act", {"obs": OBS, "planner": {"horizon": True}}, "horizon"),
    ("observe", {"transitions": [{**TRANSITION, "reward": 1e39}]}, "reward"),
    ("observe", {"transitions": [{**TRANSITION, "next_obs": [1, 0, 1e39]}]}, "next_obs"),
    ("predict", {"obs": OBS, "actions": [[1e39]]}, "actions"),
])
def test_numbers_beyond_float32_or_the_trained_range_are_422_at_the_schema(server, sid, route, body, field):
    status, out = server.call("POST", f"/v1/sessions/{sid}/{route}", body)
    assert status == 422 and field in json.dumps(out), out
    assert all(d["type"] != "value_error" for d in out["detail"]), out  # refused by the schema, not the runtime


def test_session_bounds_are_in_the_schema_and_agree_with_behaviour(server, sid):
    schema = server.call("GET", "/openapi.json")[1]["components"]["schemas"]
    create = schema["CreateSession"]["properties"]
    assert {"type": "null"} in create["mode"]["anyOf"] and server.call("POST", "/v1/sessions", {"mode": None})[0] == 201
    assert schema["CreateSession"]["properties"]["task_params"]["anyOf"][0]["maxProperties"] == 64
    obs = schema["ActRequest"]["properties"]["obs"]
    lo, hi = obs["prefixItems"][0]["minimum"], obs["prefixItems"][0]["maximum"]
    assert server.call("POST", f"/v1/sessions/{sid}/act", {"obs": [hi, 0, 0]})[0] == 200
    assert server.call("POST", f"/v1/sessions/{sid}/act", {"obs": [lo * 1.001 - 1, 0, 0]})[0] == 422
    # JSON Schema's "integer" includes 218.0: integral numbers are accepted as integers, 15.5 is not
    assert server.call("POST", "/v1/sessions", {"seed": 218.0, "planner": {"samples": 64.0}})[0] == 201
    status, out = server.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS, "planner": {"horizon": 30.0}})
    assert status == 200 and len(out["plan"]) == 30


# ------------------------------------------------------------------------------------------ 3. validation cost
@pytest.mark.serial  # a latency bound: run alone, after the parallel suite
def test_a_huge_invalid_array_is_one_cheap_error_with_a_small_body(server, sid):
    bodies = {
        "act": {"obs": ["a"] * 240_000},
        "observe": {"transitions": [{"obs": ["a"] * 4, "action": ["b"] * 2, "next_obs": ["c"] * 4, "reward": "r",
                                     **{f"k{i}": 1 for i in range(8)}}] * 1000},
        "predict": {"obs": OBS, "actions": [["x"]] * 1000},
    }
    extra = {"obs": OBS, **{f"k{i}": 1 for i in range(90_000)}}
    big_target = {"obs": OBS, "cost": {"target": [[1, 0, "a"]] * 10_000}}
    for route, body in [*bodies.items(), ("act", extra), ("act", big_target)]:
        raw = json.dumps(body, separators=(",", ":"))
        assert len(raw) < 1_000_000
        t0 = time.perf_counter()
        status, out = server.call("POST", f"/v1/sessions/{sid}/{route}", raw=raw)
        elapsed = time.perf_counter() - t0
        assert status == 422 and len(out["detail"]) <= 20 and len(json.dumps(out)) < 10_000, (route, out)
        assert elapsed < 0.5, (route, elapsed)
    many = json.dumps({"task_params": {str(i): 1 for i in range(90_000)}}, separators=(",", ":"))
    status, out = server.call("POST", "/v1/sessions", raw=many)
    assert status == 422 and out["error_count"] == 1


ATTACKER = """
import http.client, sys, threading
port, path, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = ('{"obs":[' + ",".join(['"a"'] * 240000) + ']}').encode()
def one():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    assert c.getresponse().status == 422
for _ in range(rounds):
    ts = [threading.Thread(target=one) for _ in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
"""


def act_latencies_ms(server: Server, sid: str, n: int) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/sessions/{sid}/act", body=json.dumps({"obs": OBS}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        out.append(time.perf_counter() - t0)
    conn.close()
    return np.array(out) * 1000


@pytest.mark.serial  # a latency bound: run alone, after the parallel suite
def test_huge_invalid_bodies_do_not_stall_another_clients_act_loop(server, sid):
    """p99 of one client's act loop while another sends 8 such 0.96 MB bodies at once, three times over."""
    act_latencies_ms(server, sid, 20)
    for _ in range(2):  # the CI machine is shared: one retry for a noisy neighbour
        base = act_latencies_ms(server, sid, 300)
        attacker = subprocess.Popen([sys.executable, "-c", ATTACKER, str(server.port),
                                     f"/v1/sessions/{sid}/act", "3"])
        loaded = act_latencies_ms(server, sid, 300)
        assert attacker.wait(60) == 0
        increase = np.percentile(loaded, 99) - np.percentile(base, 99)
        print(f"act p99 {np.percentile(base, 99):.2f} ms -> {np.percentile(loaded, 99):.2f} ms under attack "
              f"(max {loaded.max():.1f} ms)")
        if increase < 50 and loaded.max() < 1000:
            return
    pytest.fail(f"p99 rose by {increase:.1f} ms (max {loaded.max():.0f} ms)")


# ------------------------------------------------------------------------------------------ 4. body limit and timeout
def test_body_limit_answers_413_before_reading_and_closes(server, sid):
    head = post_head(f"/v1/sessions/{sid}/act", "Content-Length: 50000000\r\n")
    data, first, closed = raw_request(server.port, head)  # not one byte of the body sent
    assert data.startswith(b"HTTP/1.1 413") and first < 2 and closed, data[:200]
    assert b"max-body-bytes" in data


def test_a_false_content_length_or_a_stalled_chunked_body_gets_408_within_the_timeout(tiny_artifact):
    s = Server.start(tiny_artifact, "--body-timeout", "1")
    try:
        sid = s.new_session()
        for head, body in (
            (post_head(f"/v1/sessions/{sid}/act", "Content-Length: 100\r\n"), b'{"obs": [1,'),
            (post_head(f"/v1/sessions/{sid}/act", "Transfer-Encoding: chunked\r\n"), b"5\r\n{\"obs\r\n"),
        ):
            t0 = time.monotonic()
            data, _, closed = raw_request(s.port, head, body, timeout=10)
            assert data.startswith(b"HTTP/1.1 408") and closed and time.monotonic() - t0 < 4, data[:200]
        assert s.call("POST", f"/v1/sessions/{sid}/act", {"obs": OBS})[0] == 200  # the server is fine
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ 5. server defaults
def test_a_non_loopback_host_needs_a_token_or_insecure(tiny_artifact, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MBMRL_TOKEN"}
    for cmd in ([*mbmrl_cmd(), "serve"], [sys.executable, "-m", "mbmrl.runtime.serve"]):
        p = subprocess.run([*cmd, str(tiny_artifact), "--host", "0.0.0.0", "--port", str(free_port())],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 2 and "--insecure" in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "mbmrl serve: http" not in p.stdout
    port = free_port()
    s = Server([*mbmrl_cmd(), "serve", str(tiny_artifact), "--host", "0.0.0.0", "--port", str(port), "--insecure"],
               port)
    s.stop()


def test_token_file_keeps_the_token_out_of_the_process_list(tiny_artifact, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t0ken-from-a-file\n")
    token_file.chmod(0o600)
    port = free_port()
    s = Server([*mbmrl_cmd(), "serve", str(tiny_artifact), "--port", str(port), "--token-file", str(token_file)],
               port, token="t0ken-from-a-file")
    try:
        assert s.call("GET", "/v1/model")[0] == 200
        assert s.call("GET", "/v1/model", token="wrong")[0] == 401
        assert b"t0ken-from-a-file" not in Path(f"/proc/{s.proc.pid}/cmdline").read_bytes()
    finally:
        s.stop()


def test_docs_are_off_by_default_and_on_with_the_flag(server, tiny_artifact):
    assert server.call("GET", "/docs")[0] == 404 and server.call("GET", "/redoc")[0] == 404
    assert server.call("GET", "/openapi.json")[0] == 200
    s = Server.start(tiny_artifact, "--docs")
    try:
        assert s.call("GET", "/docs")[0] == 200 and s.call("GET", "/redoc")[0] == 200
    finally:
        s.stop()
    s = Server.start(tiny_artifact, "--docs", token="t0ken")  # a browser cannot send the bearer header
    try:
        assert s.call("GET", "/docs", token="")[0] == 200 and s.call("GET", "/openapi.json", token="")[0] == 200
        assert s.call("GET", "/v1/model", token="")[0] == 401
    finally:
        s.stop()


def test_the_startup_line_comes_only_after_the_artifact_is_verified_and_loaded(tiny_artifact, tmp_path):
    broken = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, broken)
    onnx = sorted(broken.glob("*.onnx"))[0]
    onnx.write_bytes(onnx.read_bytes()[:-16] + b"\0" * 16)  # same size, wrong hash
    p = subprocess.run([*mbmrl_cmd(), "serve", str(broken), "--port", str(free_port())], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "mbmrl serve: http" not in p.stdout, (p.stdout, p.stderr[-2000:])
    port = free_port()
    s = Server([*mbmrl_cmd(), "serve", str(tiny_artifact), "--port", str(port)], port)
    try:
        line = s.proc.stdout.readline()
        assert line.startswith(f"mbmrl serve: http://127.0.0.1:{port}") and "no token" in line, line
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ 6. small HTTP truths
def test_small_http_truths(server, sid):
    long_id = "f" * 5000
    status, out = server.call("GET", f"/v1/sessions/{long_id}")
    assert status == 422 and long_id not in json.dumps(out)
    status, out = server.call("GET", f"/v1/sessions/{'f' * 64}")
    assert status == 404 and len(out["detail"]) < 300
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for path, methods in ((f"/v1/sessions/{sid}", {"GET", "DELETE"}), ("/v1/sessions", {"GET", "POST"}),
                          (f"/v1/sessions/{sid}/act", {"POST"})):
        conn.request("OPTIONS", path)
        response = conn.getresponse()
        response.read()
        assert response.status == 405 and methods <= set(response.getheader("Allow").split(", ")), path
    status, out = server.call("POST", f"/v1/sessions/{sid}/act", raw=b'{"obs": [1, 0, \xff]}')
    assert status == 422 and out["detail"][0]["loc"] == ["body"] and "UTF-8" in out["detail"][0]["msg"]
    assert server.call("POST", f"/v1/sessions/{sid}/act", raw="[" * 100_000 + "]" * 100_000)[0] == 422

    paths = server.call("GET", "/openapi.json")[1]["paths"]
    sessions, one = "/v1/sessions", "/v1/sessions/{session_id}"
    expected = {
        (sessions, "post"): {"401", "408", "413", "422", "429"},
        (sessions, "get"): {"401", "408", "413"},
        (one, "get"): {"401", "404", "408", "413", "422"},
        (one, "delete"): {"401", "404", "408", "413", "422"},
        (one + "/act", "post"): {"401", "404", "408", "413", "422", "503"},
        (one + "/observe", "post"): {"401", "404", "408", "413", "422"},
        (one + "/predict", "post"): {"401", "404", "408", "413", "422", "503"},
        (one + "/reset", "post"): {"401", "404", "408", "413", "422"},
        ("/v1/model", "get"): {"401", "408", "413"},
    }
    for (path, method), statuses in expected.items():
        assert statuses <= set(paths[path][method]["responses"]), (path, method)
    acted = server.call("GET", "/openapi.json")[1]["components"]["schemas"]["Acted"]
    assert acted["properties"]["fallback"]["type"] == "boolean"


# ------------------------------------------------------------------------------------------ 7. schemathesis
@pytest.mark.parametrize("token", [None, "s3cret"])
def test_schemathesis_finds_nothing(tiny_artifact, token, tmp_path):
    """Every operation, every check, seeded: the schema tells the truth (tests/runtime/schemathesis_hooks.py
    forgives only the planner budget's 422, which JSON Schema cannot state)."""
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    s = Server.start(tiny_artifact, token=token)
    try:
        auth = ["-H", f"Authorization: Bearer {token}"] if token else []
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
               "NO_COLOR": "1"}
        p = subprocess.run([str(st), "run", f"{s.url}/openapi.json", *auth, "--checks", "all",
                            "--max-examples", "100" if token is None else "30", "--seed", "1", "--workers", "1",
                            "--generation-database", "none"], capture_output=True, text=True, env=env, timeout=300,
                           cwd=tmp_path)  # st keeps a cache in its working directory
        assert p.returncode == 0 and "No issues found" in p.stdout, p.stdout[-6000:] + p.stderr[-2000:]
    finally:
        s.stop()
