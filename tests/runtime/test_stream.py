"""The control stream: step messages over one WebSocket, same answers and errors as HTTP, survives bad ones."""

from __future__ import annotations

import numpy as np
import pytest
from mbmrl.runtime import Session, load
from mbmrl.runtime.client import ApiError, Client, StepStream
from test_server import OBS, TRANSITION, Server

websockets = pytest.importorskip("websockets")


def test_stream_steps_equal_http_steps_and_the_session_in_process(tiny_artifact):
    server = Server.start(tiny_artifact)
    try:
        client = Client(f"http://127.0.0.1:{server.port}")
        over_http = client.new_session(mode="bayes", seed=3, planner={"samples": 64})
        streamed = client.new_session(mode="bayes", seed=3, planner={"samples": 64})
        local = Session(load(tiny_artifact), "bayes", seed=3, planner={"samples": 64})
        with streamed.stream() as stream:
            transition = None
            for _ in range(4):
                (s1, a), (s2, b), (_, c) = (stream.step(OBS, transition), over_http.step(OBS, transition),
                                            local.step(OBS, transition))
                assert s1 == s2 and np.array_equal(a.action, b.action) and np.array_equal(a.action, c.action)
                transition = TRANSITION
            # bad messages get their error and the stream goes on
            with pytest.raises(ApiError) as e:
                stream.step([1.0, 0.0])
            assert e.value.status == 422 and "obs" in str(e.value)
            stream._ws.send("{not json")
            assert '"status":422' in stream._ws.recv()
            with pytest.raises(ApiError, match="422"):
                stream.step(OBS, {**TRANSITION, "next_obs": [1e20, 0.0, 0.0]})
            assert stream.step(OBS)[1].action.shape == (1,)
        assert client.request("GET", f"/v1/sessions/{streamed.session_id}")["n_observed"] == 3
    finally:
        server.stop()


def test_the_stream_needs_the_token_and_a_live_session(tiny_artifact):
    server = Server.start(tiny_artifact, token="s3cret")
    try:
        good = Client(f"http://127.0.0.1:{server.port}", token="s3cret").new_session(seed=0)
        with good.stream() as stream:
            assert stream.step(OBS)[0] is None
        anonymous = Client(f"http://127.0.0.1:{server.port}")
        for session_id, client in ((good.session_id, anonymous), ("0" * 32, good.client)):
            with pytest.raises(websockets.exceptions.InvalidStatus):  # the handshake is refused (403)
                StepStream(client, f"/v1/sessions/{session_id}/stream")
    finally:
        server.stop()
