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

BLOCKER = textwrap.dedent("""
    import sys

    class _Blocked:
        BLOCKED = ("torch", "mbmrl.train", "mbmrl.export")

        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in self.BLOCKED):
                raise ImportError(f"{name} is blocked: the runtime must not need it")
            return None

    sys.meta_path.insert(0, _Blocked())
""")


def _run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MBMRL_TOKEN"}
    argv = [sys.executable, "-c", BLOCKER + textwrap.dedent(code)]
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


def test_mbmrl_serve_cli_without_torch(tiny_artifact):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["serve", str(tiny_artifact), "--port", str(port)]
    code = BLOCKER + f"from mbmrl.main import main; sys.exit(main({argv!r}))"
    env = {k: v for k, v in os.environ.items() if k != "MBMRL_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
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
