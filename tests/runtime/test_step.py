"""One control step in one round trip: fold the previous transition and plan, in process and over HTTP."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from mbmrl.runtime import Session, load
from mbmrl.runtime.client import Client
from test_server import Server

OBS = np.array([1.0, 0.0, 0.0], np.float32)


def _transitions(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        th = rng.uniform(-np.pi, np.pi)
        obs = np.array([np.cos(th), np.sin(th), rng.uniform(-1, 1)], np.float32)
        out.append({"obs": obs.tolist(), "action": rng.uniform(-2, 2, 1).tolist(),
                    "next_obs": (obs + rng.normal(0, 0.05, 3)).tolist(), "reward": float(rng.uniform(-5, 0))})
    return out


@pytest.fixture(scope="module")
def rt(tiny_artifact):
    return load(tiny_artifact)


def test_step_is_observe_then_act(rt):
    for mode in ("recurrent", "bayes"):
        a, b = Session(rt, mode, seed=4), Session(rt, mode, seed=4)
        first, r = a.step(OBS)
        assert first is None and np.array_equal(r.action, b.act(OBS).action)
        for t in _transitions(5):
            surprise, r = a.step(t["next_obs"], t)
            assert surprise == b.observe(**t)
            np.testing.assert_array_equal(r.plan, b.act(t["next_obs"]).plan)
        assert a.n_observed == b.n_observed == 5


def test_a_step_whose_planning_fails_folds_nothing(rt):
    s = Session(rt, "bayes", seed=0)
    t = _transitions(1)[0]
    with pytest.raises(ValueError, match="horizon"):
        s.step(OBS, t, planner={"horizon": 7})
    assert s.n_observed == 0 and len(s.state.phi) == 0


def test_step_over_http_matches_the_session_in_process_and_survives_a_crash(tiny_artifact, rt, tmp_path):
    server = Server.start(tiny_artifact, "--state-dir", str(tmp_path))
    try:
        remote = Client(f"http://127.0.0.1:{server.port}").new_session(mode="bayes", seed=9, planner={"samples": 64})
        local = Session(rt, "bayes", seed=9, planner={"samples": 64})
        first, r = remote.step(OBS)
        assert first is None and np.array_equal(r.action, local.step(OBS)[1].action)
        for t in _transitions(4, seed=1):
            (s_remote, r_remote), (s_local, r_local) = remote.step(t["next_obs"], t), local.step(t["next_obs"], t)
            assert s_remote == pytest.approx(s_local, rel=1e-6)
            np.testing.assert_array_equal(r_remote.action, r_local.action)
        bad = {**_transitions(1)[0], "next_obs": [1e20, 0.0, 0.0]}
        assert server.call("POST", f"/v1/sessions/{remote.session_id}/step",
                           {"obs": OBS.tolist(), "transition": bad})[0] == 422
        server.stop(signal.SIGKILL)  # the transitions of acknowledged steps are on disk
        server = Server.start(tiny_artifact, "--state-dir", str(tmp_path))
        info = server.call("GET", f"/v1/sessions/{remote.session_id}")[1]
        assert info["n_observed"] == 4
    finally:
        server.stop()
