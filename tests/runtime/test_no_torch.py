"""The runtime, the server and `mbmrl serve` work where torch cannot be imported (a Raspberry Pi)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

RUNTIME_ONLY = ("torch", "mbmrl.train", "mbmrl.export")


def blocker(blocked: tuple[str, ...] = RUNTIME_ONLY) -> str:
    """Python source that makes importing any of `blocked` (or their submodules) fail."""
    return BLOCKER.replace("BLOCKED = ()", f"BLOCKED = {blocked!r}")


BLOCKER = textwrap.dedent("""
    import sys

    class _Blocked:
        BLOCKED = ()

        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in self.BLOCKED):
                raise ImportError(f"{name} is blocked: the runtime must not need it")
            return None

    sys.meta_path.insert(0, _Blocked())
""")


def _run_python(code: str, timeout: float = 120, blocked: tuple[str, ...] = RUNTIME_ONLY,
                ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MBMRL_TOKEN"}
    argv = [sys.executable, "-c", blocker(blocked) + textwrap.dedent(code)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_blocker_blocks_torch():
    out = _run_python("""
        try:
            import torch  # noqa: F401
        except ImportError as e:
            print("blocked:", e)
    """)
    assert out.returncode == 0 and "blocked: torch is blocked" in out.stdout


def test_runtime_server_and_client_import_and_serve_without_torch(tiny_artifact):
    out = _run_python(f"""
        import mbmrl.runtime, mbmrl.runtime.server, mbmrl.runtime.client, mbmrl.runtime.serve
        from fastapi.testclient import TestClient
        from mbmrl.runtime.server import create_app

        app = create_app({str(tiny_artifact)!r})
        with TestClient(app) as c:
            assert c.get("/healthz").json() == {{"status": "ok"}}
            assert c.get("/v1/model").json()["obs_dim"] == 3
            r = c.post("/v1/sessions", json={{"mode": "gradient", "planner": {{"samples": 32}}}})
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]
            t = {{"obs": [1, 0, 0], "action": [0.5], "next_obs": [0.99, 0.05, 0.4]}}
            assert c.post(f"/v1/sessions/{{sid}}/observe", json={{"transitions": [t]}}).status_code == 200
            r = c.post(f"/v1/sessions/{{sid}}/act", json={{"obs": [1, 0, 0]}})
            assert r.status_code == 200 and len(r.json()["plan"]) == 15, r.text
            assert c.post(f"/v1/sessions/{{sid}}/act", content="{{\\"obs\\": [NaN, 0, 0]}}",
                          headers={{"content-type": "application/json"}}).status_code == 422
        prefixes = ("torch.", "mbmrl.train", "mbmrl.export")
        blocked = [m for m in sys.modules if m == "torch" or m.startswith(prefixes)]
        assert not blocked, blocked
        print("OK")
    """)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def _serve_and_create_a_session(code: str) -> None:
    """Run `code` (which starts a server on PORT) and check it serves; fails on any import error."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "MBMRL_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-c", code.replace("PORT", str(port))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
                    assert json.load(r) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.05)
        request = urllib.request.Request(f"{url}/v1/sessions", data=b'{"seed": 0}', method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 201 and "session_id" in json.load(r)
        with urllib.request.urlopen(f"{url}/v1/sessions", timeout=10) as r:
            assert len(json.load(r)["sessions"]) == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "ImportError" not in err and "Traceback" not in err, err


def test_serve_module_without_torch_train_or_export(tiny_artifact):
    """`python -m mbmrl.runtime.serve`: what a device with only `mbmrl[serve]` runs."""
    argv = [str(tiny_artifact), "--port", "PORT"]
    _serve_and_create_a_session(blocker() + f"from mbmrl.runtime.serve import main; main({argv!r})")


def test_mbmrl_serve_console_script_without_torch(tiny_artifact):
    """`mbmrl serve`: the console script registers every subcommand without importing torch or onnx."""
    argv = ["serve", str(tiny_artifact), "--port", "PORT"]
    code = blocker(("torch", "onnx", "onnxscript", "gymnasium")) + \
        f"from mbmrl.export.cli import main; sys.exit(main({argv!r}))"
    _serve_and_create_a_session(code)


def test_the_robot_side_client_needs_only_the_standard_library_and_numpy(tiny_artifact):
    """Robot code on another computer: no inference engine, no web framework, no torch."""
    from mbmrl.runtime.local_server import local_server

    with local_server(tiny_artifact) as url:
        out = _run_python(f"""
            import numpy as np
            from mbmrl.runtime.client import Client

            s = Client({url!r}).new_session(mode="bayes", seed=0, planner={{"samples": 32}})
            assert s.observe([1, 0, 0], [0.5], [0.99, 0.05, 0.4], -0.1) >= 0
            r = s.act(np.array([1.0, 0.0, 0.0]))
            assert r.action.shape == (1,) and r.plan.shape == (15, 1) and np.isfinite(r.expected_cost)
            pred, var = s.predict([1, 0, 0], r.plan)
            assert np.allclose(pred[0], r.predicted_obs[0], atol=1e-3) and var.shape == (15, 3)
            with s.stream() as stream:  # the control stream too: a stdlib WebSocket
                t = {{"obs": [1, 0, 0], "action": [0.5], "next_obs": [0.99, 0.05, 0.4]}}
                surprise, r = stream.step([1, 0, 0], t)
                assert surprise >= 0 and r.action.shape == (1,)
            s.close()
            loaded = [m for m in sys.modules if m.split(".")[0] in ("onnxruntime", "fastapi", "torch", "pydantic",
                                                                    "websockets")]
            assert not loaded, loaded
            print("OK")
        """, blocked=("onnxruntime", "fastapi", "torch", "pydantic", "uvicorn", "starlette", "websockets"))
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
