"""Session recordings: MCAP files a live server writes, that `mcap` reads, that replay to the same surprises,
and that survive `kill -9` up to their last flushed chunk."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from mbmrl.runtime.client import Client
from test_server import OBS, Server

mcap = pytest.importorskip("mcap")


def _drive(client: Client, steps: int, mode: str = "bayes") -> tuple[str, list[float]]:
    """A session stepping a made-up pendulum-like loop; returns its id and the surprises the server reported."""
    s = client.new_session(mode=mode, seed=1, planner={"samples": 32})
    obs, transition, surprises = np.array(OBS, np.float32), None, []
    for _ in range(steps):
        surprise, r = s.step(obs, transition)
        if surprise is not None:
            surprises.append(surprise)
        nxt = np.array([np.cos(0.1) * obs[0] - np.sin(0.1) * obs[1], np.sin(0.1) * obs[0] + np.cos(0.1) * obs[1],
                        0.9 * obs[2] + 0.1 * float(r.action[0])], np.float32)
        transition = {"obs": obs, "action": r.action, "next_obs": nxt, "reward": -1.0}
        obs = nxt
    return s.session_id, surprises


def test_a_served_session_is_recorded_read_and_replayed(tiny_artifact, tmp_path):
    from mbmrl.runtime.recording import read_recording
    from mbmrl.train.replay import ReplayConfig, replay
    from mcap.reader import make_reader

    server = Server.start(tiny_artifact, "--record", str(tmp_path / "rec"))
    try:
        client = Client(server.url)
        sid, surprises = _drive(client, 25)
        client.request("DELETE", f"/v1/sessions/{sid}")  # ends the session: its file gets its summary
    finally:
        server.stop()
    files = sorted((tmp_path / "rec").glob(f"{sid}-*.mcap"))
    assert len(files) == 1
    with open(files[0], "rb") as f:
        summary = make_reader(f).get_summary()
    topics = {c.topic: c.message_encoding for c in summary.channels.values()}
    assert topics == {"/mbmrl/session": "json", "/mbmrl/transition": "json", "/mbmrl/plan": "json",
                      "/mbmrl/reference": "json"}
    assert {s.encoding for s in summary.schemas.values()} == {"jsonschema"}
    msgs = read_recording(files)
    kinds = [topic for topic, _, _ in msgs]
    assert kinds.count("/mbmrl/plan") == 25 and kinds.count("/mbmrl/transition") == 24
    times = [t for _, t, _ in msgs]
    assert times == sorted(times)
    recorded = [m["surprise"] for topic, _, m in msgs if topic == "/mbmrl/transition"]
    np.testing.assert_allclose(recorded, surprises, rtol=1e-6)
    out = replay(ReplayConfig(recordings=str(tmp_path / "rec"), artifact=str(tiny_artifact), mode="bayes",
                              out=str(tmp_path / "replay")))
    assert out["transitions"] == 24 and out["max_surprise_diff"] < 1e-5
    assert out["mean_h_step_error"] is not None and (tmp_path / "replay" / "replay.png").is_file()


def test_a_killed_server_leaves_a_readable_recording(tiny_artifact, tmp_path):
    from mbmrl.runtime.recording import FLUSH_S, read_recording
    from mcap.reader import make_reader

    server = Server.start(tiny_artifact, "--record", str(tmp_path / "rec"))
    try:
        sid, surprises = _drive(Client(server.url), 30)
        time.sleep(3 * FLUSH_S)  # the writer closes a chunk and flushes at least every FLUSH_S
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    files = sorted((tmp_path / "rec").glob(f"{sid}-*.mcap"))
    with open(files[0], "rb") as f, pytest.raises(Exception):  # noqa: B017 - no summary: the end is missing
        make_reader(f).get_summary().statistics  # noqa: B018
    msgs = read_recording(files)
    recorded = [m["surprise"] for topic, _, m in msgs if topic == "/mbmrl/transition"]
    np.testing.assert_allclose(recorded, surprises, rtol=1e-6)  # everything up to the kill


def test_the_python_api_records_too(tiny_artifact, tmp_path):
    from mbmrl.runtime import Session, load
    from mbmrl.runtime.recording import Recorder, read_recording

    rec = Recorder(tmp_path, "local", {"mode": "recurrent"}, max_bytes=4096)  # tiny files: rotation
    s = Session(load(tiny_artifact), "recurrent", seed=0, recorder=rec)
    for _ in range(40):
        r = s.act(OBS)
        s.observe(OBS, r.action, OBS, 0.0)
    rec.close()
    assert len(rec.files) > 1 and all(f.is_file() for f in rec.files)
    msgs = read_recording(rec.files)
    assert [t for t, _, _ in msgs].count("/mbmrl/transition") == 40
    assert [t for t, _, _ in msgs].count("/mbmrl/session") == len(rec.files)  # each file says whose it is
