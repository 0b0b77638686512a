"""One control step (`step`: fold the last transition, plan the next action) as a robot feels it: in
process, over HTTP (keep-alive `RemoteSession`) and over the WebSocket stream, against a real `mbmrl serve`
child process on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from mbmrl.runtime.client import Client
from mbmrl.runtime.loader import load
from mbmrl.runtime.local_server import local_server

from .bench_engines import bench_inputs, bench_mode


@contextlib.contextmanager
def served_steps(artifact: str, threads: int, planner: dict, mode: str | None = None,
                 precision: str = "fp32") -> Iterator[dict[str, Callable]]:
    """Yields {"http": call, "stream": call}: one `step` each, on two sessions of a served artifact."""
    rt = load(artifact, threads=threads)
    mode = mode or bench_mode(rt)
    obs, t = bench_inputs(rt)
    with local_server(artifact, "--threads", str(threads), "--precision", precision) as url:
        client = Client(url)
        over_http = client.new_session(mode=mode, seed=0, planner=planner)
        streamed = client.new_session(mode=mode, seed=0, planner=planner)
        with streamed.stream() as stream:
            yield {"http": lambda: over_http.step(obs, t), "stream": lambda: stream.step(obs, t)}
