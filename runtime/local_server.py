"""Run `mbmrl serve` as a child process on a free loopback port (quickstart, tests, examples)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(artifact: str | Path, *extra: str, timeout: float = 60.0) -> Iterator[str]:
    """Start `mbmrl serve ARTIFACT` (as `python -m mbmrl.runtime.serve`) on 127.0.0.1; yields its base URL;
    stops it on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "mbmrl.runtime.serve", str(artifact), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{output}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError(f"server for {artifact} did not answer /healthz within {timeout:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
