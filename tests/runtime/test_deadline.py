"""Deadlines are honoured by the number of samples chosen (judged with a fake clock, not by wall time)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mbmrl.runtime import Session, load
from mbmrl.runtime import session as session_module
from mbmrl.runtime.deadline import MIN_SAMPLES, RolloutTimer

OBS = np.array([1.0, 0.0, 0.0], np.float32)
A_MS, B_MS = 0.2, 0.01  # the fake CPU: a rollout of N sequences takes 0.2 ms + 0.01 ms x N


def test_the_timer_fits_per_call_and_per_sequence_cost_and_picks_the_largest_n_that_fits():
    t = RolloutTimer()
    assert not t.ready
    t.record(100, A_MS + 100 * B_MS)  # no per-call cost known yet: nothing learned
    t.record(1, A_MS + B_MS)
    t.record(100, A_MS + 100 * B_MS)
    assert t.ready and t.a_ms == pytest.approx(A_MS) and t.b_ms == pytest.approx(B_MS)
    n = t.samples_for(deadline_ms=5.0, iterations=2, cap=10_000)
    cost = lambda n: 2 * (A_MS + n * B_MS)  # noqa: E731  (two planning calls, the plan's states come with them)
    assert cost(n) <= 0.8 * 5.0 < cost(n + 1)
    assert t.samples_for(5.0, 2, cap=64) == 64 and t.samples_for(0.01, 1, cap=64) == MIN_SAMPLES


@pytest.fixture()
def fake_cpu(tiny_artifact, monkeypatch):
    """A runtime whose rollouts advance a fake clock by A_MS + B_MS x N; the session reads that clock."""
    rt = load(tiny_artifact)
    now = [0.0]
    monkeypatch.setattr(session_module, "clock", lambda: now[0])

    class Timed:
        horizons = rt.dynamics.horizons

        def __getattr__(self, name):
            return getattr(rt.dynamics, name)

        def rollout(self, obs, h, W, actions, terms):
            now[0] += (A_MS + B_MS * len(actions)) / 1e3
            return rt.dynamics.rollout(obs, h, W, actions, terms)

    return dataclasses.replace(rt, dynamics=Timed())


def test_act_chooses_the_samples_that_fit_the_deadline(fake_cpu):
    s = Session(fake_cpu, "recurrent", seed=0, planner={"samples": 1024})
    assert s.act(OBS).samples_used == 1024  # no deadline: the configured samples
    first = s.act(OBS, planner={"deadline_ms": 5.0})  # measures the CPU first, within the same deadline
    assert first.samples_used < 1024 and first.plan_ms <= 0.8 * 5.0 + 1e-9
    r = s.act(OBS, planner={"deadline_ms": 5.0})
    assert r.samples_used == int((0.8 * 5.0 - A_MS) / B_MS)  # the largest N that fits
    assert r.plan_ms == pytest.approx(A_MS + B_MS * r.samples_used, rel=1e-6)  # one rollout call, nothing else
    assert r.plan_ms <= 0.8 * 5.0 + 1e-9
    tight = s.act(OBS, planner={"deadline_ms": 1.0, "iterations": 2})
    assert tight.samples_used < r.samples_used and tight.plan_ms <= 0.8 * 1.0 + 1e-9


def test_a_deadline_over_http_reports_the_samples_used(tiny_artifact):
    from mbmrl.runtime.client import Client
    from test_server import Server

    server = Server.start(tiny_artifact)
    try:
        s = Client(f"http://127.0.0.1:{server.port}").new_session(seed=0, planner={"samples": 512})
        full, timed = s.act(OBS), s.act(OBS, planner={"deadline_ms": 0.5})
        assert full.samples_used == 512 and MIN_SAMPLES <= timed.samples_used <= 512 and timed.plan_ms > 0
    finally:
        server.stop()
