"""The control stream: step messages over one WebSocket, same answers and errors as HTTP, survives bad ones."""

from __future__ import annotations

import numpy as np
import pytest
from mbmrl.runtime import Session, load
from mbmrl.runtime.client import ApiError, Client, StepStream
from test_server import OBS, TRANSITION, Server

pytest.importorskip("websockets")  # the server's WebSocket implementation (the client is stdlib only)


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
            with pytest.raises(ApiError) as e:  # the handshake is refused
                StepStream(client, f"/v1/sessions/{session_id}/stream")
            assert e.value.status == 403
    finally:
        server.stop()


@pytest.mark.parametrize("size", [0, 3, 125, 126, 65535, 65536, 70001])
def test_client_frames_are_masked_and_sized_as_rfc6455_says(size):
    """What the stdlib client puts on the wire decodes (length forms 7/16/64 bits, masking) to what it sent."""
    import socket

    from mbmrl.runtime.ws import WebSocket

    a, b = socket.socketpair()
    ws = WebSocket.__new__(WebSocket)
    ws.sock, ws.file, ws.closed = a, a.makefile("rb"), False
    text = ("x" * size)[:size]
    ws.send(text)
    peer = b.makefile("rb")
    b0, b1 = peer.read(2)
    assert b0 == 0x81 and b1 & 0x80  # FIN + text, masked
    n = b1 & 0x7F
    n = int.from_bytes(peer.read(2 if n == 126 else 8), "big") if n >= 126 else n
    mask, payload = peer.read(4), peer.read(n)
    assert bytes(p ^ mask[i % 4] for i, p in enumerate(payload)).decode() == text
    # and a server frame (unmasked, 16-bit length, preceded by a ping) reads back whole
    reply = "y" * 300
    b.sendall(bytes([0x89, 2]) + b"hi" + bytes([0x81, 126]) + (300).to_bytes(2, "big") + reply.encode())
    assert ws.recv() == reply
    ws.close()
    b.close()
