"""Durable session state: journal + snapshots survive crashes, power cuts, full disks and retried requests."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from mbmrl.runtime import journal as jn
from mbmrl.runtime.client import ApiError, Client, RemoteSession
from mbmrl.runtime.loader import load
from mbmrl.runtime.local_server import free_port
from mbmrl.runtime.session import Session
from mbmrl.runtime.session_store import PersistError, SessionStore, TooManySessions, UnknownSession

OBS = [1.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def rt(tiny_artifact):
    return load(tiny_artifact)


def transitions(n: int, seed: int = 0, reward: bool = True) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        obs = rng.normal(scale=0.5, size=3)
        out.append({"obs": obs.tolist(), "action": [float(rng.uniform(-2, 2))],
                    "next_obs": (obs + rng.normal(scale=0.05, size=3)).tolist(),
                    "reward": float(rng.normal()) if reward or i % 2 else None})
    return out


def same_belief(a: Session, b: Session) -> None:
    assert a.n_observed == b.n_observed
    np.testing.assert_array_equal(a.h, b.h)
    np.testing.assert_array_equal(a.W, b.W)


def reference(rt, ts: list[dict], mode: str = "bayes") -> Session:
    s = Session(rt, mode, seed=0)
    if ts:
        s.observe_many(ts)
    return s


def observe(store: SessionStore, sid: str, ts: list[dict], key: str | None = None) -> dict:
    return store.apply(sid, "observe", lambda s: {"surprise": s.observe_many(ts), "n_observed": s.n_observed},
                       key=key, transitions=ts)


# ------------------------------------------------------------------------------------------ restore
def test_damaged_files_are_skipped_and_the_others_come_back(rt, tmp_path, caplog):
    store = SessionStore(rt, tmp_path, snapshot_every=5)
    ts = transitions(13)
    ids = [store.create(mode="bayes", seed=0)[0] for _ in range(6)]
    for sid in ids:
        for i in range(0, 13, 3):
            observe(store, sid, ts[i:i + 3])
    empty, truncated, garbage, listmeta, torn, intact = ids
    (tmp_path / f"{empty}.npz").write_bytes(b"")
    data = (tmp_path / f"{truncated}.npz").read_bytes()
    (tmp_path / f"{truncated}.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / f"{garbage}.npz").write_bytes(os.urandom(3000))
    state, _ = jn.decode_snapshot((tmp_path / f"{listmeta}.npz").read_bytes())
    (tmp_path / f"{listmeta}.npz").write_bytes(_list_meta(state))
    journal = tmp_path / f"{torn}.journal"
    good = journal.stat().st_size
    with journal.open("ab") as f:  # an unacknowledged record torn by a power cut, then junk
        f.write(jn.frame(b"x" * 64)[:20] + os.urandom(50))
    (tmp_path / ".deadbeef.npz.tmp").write_bytes(b"half")

    with caplog.at_level(logging.WARNING, logger="mbmrl.serve"):
        again = SessionStore(rt, tmp_path, snapshot_every=5)
        assert again.restore() == 2
    assert sorted(again.ids()) == sorted([torn, intact])
    for sid in (torn, intact):
        same_belief(again.get(sid).session, reference(rt, ts))
    assert journal.stat().st_size == good  # the torn tail is cut off: later records follow valid ones
    assert not (tmp_path / ".deadbeef.npz.tmp").exists()
    text = caplog.text
    for sid in (empty, truncated, garbage, listmeta):
        assert f"not restoring session {sid}" in text
    assert "__meta__ is a JSON list" in text and "torn journal tail" in text
    observe(again, torn, transitions(2, seed=9))
    third = SessionStore(rt, tmp_path, snapshot_every=5)
    third.restore()
    same_belief(third.get(torn).session, reference(rt, ts + transitions(2, seed=9)))


def _list_meta(state: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **state, __meta__=np.frombuffer(json.dumps(["bayes"]).encode(), dtype=np.uint8))
    return buf.getvalue()


@pytest.mark.parametrize("damage", ["cut", "zeros", "garbage", "stale-journal", "dead-snapshot"])
def test_power_loss_keeps_every_acknowledged_transition(rt, tmp_path, damage):
    """A power cut at the worst moment: what the store acknowledged (fsync'ed) is all back, exactly."""
    store = SessionStore(rt, tmp_path, snapshot_every=7)
    sid, _ = store.create(mode="bayes", seed=0)
    other, _ = store.create(mode="gradient", seed=0)
    ts = transitions(24, reward=False)
    for i in range(0, 24, 5):  # batches of 5 across snapshots (7): snapshot + journal of 3 records
        observe(store, sid, ts[i:i + 5])
    observe(store, other, ts[:4])
    npz, journal = tmp_path / f"{sid}.npz", tmp_path / f"{sid}.journal"
    record = jn.frame(jn.encode_transitions(transitions(2, seed=5), 3, 1))  # in flight, never acknowledged
    if damage == "cut":
        journal.write_bytes(journal.read_bytes() + record[:-7])
    elif damage == "zeros":  # size reached the disk, the data did not
        journal.write_bytes(journal.read_bytes() + b"\0" * 4096)
    elif damage == "garbage":
        journal.write_bytes(journal.read_bytes() + record[:8] + os.urandom(len(record) - 8))
    elif damage == "stale-journal":  # cut between the snapshot's two moves: new snapshot, old journal
        store.disk.snapshot(sid, store.get(sid))
        journal.write_bytes(jn.journal_header(store.get(sid).meta["generation"] - 1) + jn.frame(b"old" * 8))
    else:  # a zero-length snapshot (what a rename without fsync can leave): that session alone is lost
        npz.write_bytes(b"")
    again = SessionStore(rt, tmp_path, snapshot_every=7)
    again.restore()
    same_belief(again.get(other).session, reference(rt, ts[:4], mode="gradient"))
    if damage == "dead-snapshot":
        assert sid not in again.ids()
        return
    restored = again.get(sid).session
    same_belief(restored, reference(rt, ts))
    observe(again, sid, ts[:3])  # and it goes on journaling where it stopped
    final = SessionStore(rt, tmp_path, snapshot_every=7)
    final.restore()
    same_belief(final.get(sid).session, reference(rt, ts + ts[:3]))


def test_restore_keeps_the_most_recent_up_to_max_sessions(rt, tmp_path, caplog):
    store = SessionStore(rt, tmp_path)
    ids = [store.create(seed=i)[0] for i in range(6)]
    now = time.time()
    for age, sid in enumerate(ids):  # ids[0] is the most recently used
        for suffix in (".npz", ".journal"):
            os.utime(tmp_path / f"{sid}{suffix}", (now - 60 * age, now - 60 * age))
    with caplog.at_level(logging.WARNING, logger="mbmrl.serve"):
        capped = SessionStore(rt, tmp_path, max_sessions=3)
        assert capped.restore() == 3
    assert sorted(capped.ids()) == sorted(ids[:3])
    assert all((tmp_path / f"{sid}.npz").exists() for sid in ids)  # the others' files are kept
    assert "3 less recently used session(s)" in caplog.text
    with pytest.raises(TooManySessions):
        capped.create()


def test_idle_sessions_expire_in_memory_on_disk_and_on_restore(rt, tmp_path):
    store = SessionStore(rt, tmp_path, ttl_s=60)
    old, _ = store.create()
    fresh, _ = store.create()
    store.get(old).last_used -= 61
    with pytest.raises(UnknownSession, match="idle"):
        store.get(old)
    assert not (tmp_path / f"{old}.npz").exists() and not (tmp_path / f"{old}.journal").exists()
    store.get(fresh).last_used -= 61
    full = SessionStore(rt, None, max_sessions=1, ttl_s=60)
    stale, _ = full.create()
    full.get(stale).last_used -= 61
    full.create()  # the idle one makes room
    assert stale not in full.ids()
    gone, kept = store.create()[0], store.create()[0]
    past = time.time() - 120
    for suffix in (".npz", ".journal"):
        os.utime(tmp_path / f"{gone}{suffix}", (past, past))
    again = SessionStore(rt, tmp_path, ttl_s=60)
    again.restore()
    assert kept in again.ids() and gone not in again.ids() and not (tmp_path / f"{gone}.npz").exists()
    assert SessionStore(rt, tmp_path, ttl_s=0).restore() >= 1  # 0: never expire


def test_fsync_each_observe_by_default_or_every_interval(rt, tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    store = SessionStore(rt, tmp_path / "a")
    sid, _ = store.create()
    assert len(synced) == 4  # a snapshot: two files, each followed by a directory fsync
    for t in transitions(3):
        observe(store, sid, [t])
    assert len(synced) == 7  # one per observe, before it is acknowledged
    lazy = SessionStore(rt, tmp_path / "b", fsync_interval_ms=50)
    sid, _ = lazy.create()
    synced.clear()
    for t in transitions(3):
        observe(lazy, sid, [t])
    assert synced == [] and lazy.get(sid).unsynced
    deadline = time.monotonic() + 5
    while lazy.get(sid).unsynced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lazy.get(sid).unsynced and len(synced) == 1
    lazy.close()


# ------------------------------------------------------------------------------------------ failures
def test_persist_failure_leaves_memory_and_disk_unchanged(rt, tmp_path, monkeypatch):
    store = SessionStore(rt, tmp_path)
    sid, session = store.create(mode="bayes", seed=0)
    ts = transitions(6)
    observe(store, sid, ts[:2])
    real = jn.write_all

    def half_then_enospc(fd: int, data: bytes) -> int:
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jn, "write_all", half_then_enospc)
    with pytest.raises(PersistError, match="No space left"):
        observe(store, sid, ts[2:4])
    same_belief(session, reference(rt, ts[:2]))
    with pytest.raises(PersistError):
        store.apply(sid, "reset", lambda s: (s.reset(), {})[1])
    same_belief(session, reference(rt, ts[:2]))
    with pytest.raises(PersistError):
        store.create()
    assert store.ids() == [sid] and sorted(p.name for p in tmp_path.iterdir()) == [f"{sid}.journal", f"{sid}.npz"]
    store.apply(sid, "act", lambda s: {"a": s.act(OBS).action})  # act writes nothing: never fails on disk
    monkeypatch.setattr(jn, "write_all", real)
    observe(store, sid, ts[2:4])  # the retry applies it once
    same_belief(session, reference(rt, ts[:4]))
    again = SessionStore(rt, tmp_path)
    again.restore()
    same_belief(again.get(sid).session, reference(rt, ts[:4]))


def test_http_503_when_the_disk_is_full(tiny_artifact, rt, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient
    from mbmrl.runtime.server import create_app

    with TestClient(create_app(tiny_artifact, state_dir=tmp_path)) as c:
        sid = c.post("/v1/sessions", json={"mode": "bayes", "seed": 0}).json()["session_id"]
        body = {"transitions": transitions(2)}
        assert c.post(f"/v1/sessions/{sid}/observe", json=body).status_code == 200
        before = c.get(f"/v1/sessions/{sid}").json()

        def enospc(fd: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(jn, "write_all", enospc)
        r = c.post(f"/v1/sessions/{sid}/observe", json=body)
        assert r.status_code == 503 and "No space left" in r.json()["detail"] and r.headers["retry-after"]
        assert c.get(f"/v1/sessions/{sid}").json() == before
        assert c.post(f"/v1/sessions/{sid}/reset").status_code == 503
        assert c.get(f"/v1/sessions/{sid}").json() == before
        assert c.post("/v1/sessions", json={}).status_code == 503
        assert c.get("/v1/sessions").json()["sessions"] == [sid]
        assert c.post(f"/v1/sessions/{sid}/act", json={"obs": OBS}).status_code == 200
        monkeypatch.undo()
        assert c.post(f"/v1/sessions/{sid}/observe", json=body).json()["n_observed"] == 4


# ------------------------------------------------------------------------------------------ idempotency
def test_a_repeated_idempotency_key_is_answered_not_applied(tiny_artifact, tmp_path):
    from fastapi.testclient import TestClient
    from mbmrl.runtime.server import create_app

    with TestClient(create_app(tiny_artifact, state_dir=tmp_path)) as c:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        created = c.post("/v1/sessions", json={"mode": "bayes"}, headers=key).json()
        assert c.post("/v1/sessions", json={"mode": "bayes"}, headers=key).json() == created
        sid = created["session_id"]
        assert c.get("/v1/sessions").json()["sessions"] == [sid]
        body = {"transitions": transitions(3)}
        first = c.post(f"/v1/sessions/{sid}/observe", json=body, headers=key)
        again = c.post(f"/v1/sessions/{sid}/observe", json=body, headers=key)
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        assert again.json()["n_observed"] == 3
        assert c.post(f"/v1/sessions/{sid}/observe", json=body).json()["n_observed"] == 6  # no key: applied
        act = c.post(f"/v1/sessions/{sid}/act", json={"obs": OBS}, headers=key).json()
        assert c.post(f"/v1/sessions/{sid}/act", json={"obs": OBS}, headers=key).json() == act
        assert c.post(f"/v1/sessions/{sid}/observe", json=body, headers={"Idempotency-Key": "x" * 129}
                      ).status_code == 422


def test_client_sends_one_key_per_request_and_repeats_it_on_the_retry():
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Idempotency-Key")))
            if len(seen) == 2:  # applied, but the answer is lost: the connection drops
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = json.dumps({"n_observed": len(seen), "surprise": [0.0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        session = RemoteSession(Client(f"http://127.0.0.1:{httpd.server_address[1]}"), "abc", "bayes")
        session.observe(OBS, [0.0], OBS)
        session.observe(OBS, [0.0], OBS)  # first try is lost with the connection, the retry is answered
    finally:
        httpd.shutdown()
        httpd.server_close()
    keys = [k for _, k in seen]
    assert len(seen) == 3 and all(keys) and keys[1] == keys[2] and keys[0] != keys[1]


# ------------------------------------------------------------------------------------------ flash wear
def test_state_writes_per_session_at_50_hz_stay_under_20_kb_per_s(rt, tmp_path):
    store = SessionStore(rt, tmp_path)  # the defaults: fsync each observe, snapshot every 200 transitions
    sid, _ = store.create(mode="bayes", seed=0, planner={"samples": 32})
    start, steps = store.disk.bytes_written, 500
    obs = np.array(OBS)
    for t in transitions(steps):
        action = store.apply(sid, "act", lambda s: {"a": s.act(obs).action})["a"]
        observe(store, sid, [{**t, "action": action.tolist()}])
    per_s = (store.disk.bytes_written - start) / (steps / 50)
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    print(f"{store.disk.bytes_written - start} B written for {steps} act+observe steps: {per_s:.0f} B/s at 50 Hz "
          f"({per_s * 86400 / 1e9:.2f} GB/day); {on_disk} B on disk")
    assert per_s <= 20_000


# ------------------------------------------------------------------------------------------ kill -9
def _serve(artifact: Path, state: Path) -> tuple[subprocess.Popen, Client]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mbmrl.runtime.serve", str(artifact), "--port", str(port),
                             "--state-dir", str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client, deadline = Client(f"http://127.0.0.1:{port}", timeout=10), time.monotonic() + 60
    while True:
        try:
            client.health()
            return proc, client
        except ApiError:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_during_observe_traffic_loses_no_acknowledged_transition(tiny_artifact, rt, tmp_path):
    rng = np.random.default_rng(0)
    pool, acked, sid, ref = transitions(20_000, seed=1), 0, None, Session(rt, "bayes", seed=0)
    outcomes, inflight = [], []
    for trial in range(10):
        proc, client = _serve(tiny_artifact, tmp_path)
        killer = threading.Timer(rng.uniform(0.05, 0.6), proc.send_signal, (signal.SIGKILL,))
        try:
            if sid is None:
                sid = client.new_session(mode="bayes", seed=0).session_id
            s = client.session(sid)
            info = s.info()
            n = info["n_observed"]
            assert n in (acked, acked + len(inflight)), (trial, n, acked)  # a batch is all or nothing
            if n > acked:
                ref.observe_many(inflight)
                outcomes[-1] += " + in-flight batch"
            acked = n
            assert info["n_observed"] == ref.n_observed
            assert (info["h_norm"], info["w_shift"]) == (ref.info()["h_norm"], ref.info()["w_shift"])
            np.testing.assert_array_equal(s.predict(OBS, np.ones((3, 1)))[0], ref.predict(OBS, np.ones((3, 1)))[0])
            killer.start()
            while True:
                inflight = pool[acked: acked + int(rng.integers(1, 4))]
                try:
                    s.observe_many(inflight)
                except ApiError as e:
                    assert e.status == 0, e  # killed, nothing else
                    break
                ref.observe_many(inflight)
                acked += len(inflight)
            outcomes.append(f"{acked - n} acknowledged")
        finally:
            killer.cancel()
            proc.kill()
            proc.wait()
    proc, client = _serve(tiny_artifact, tmp_path)
    try:
        n = client.session(sid).info()["n_observed"]
        assert n in (acked, acked + len(inflight))
        outcomes[-1] += " + in-flight batch" if n > acked else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    print(f"10 kill -9 trials, all acknowledged transitions back, exactly: {outcomes}")


def test_one_client_cannot_take_every_session(rt):
    store = SessionStore(rt, max_sessions=10, max_per_client=2)
    for _ in range(2):
        store.create(owner="10.0.0.7")
    with pytest.raises(TooManySessions, match="client 10.0.0.7 holds its maximum of 2"):
        store.create(owner="10.0.0.7")
    store.create(owner="10.0.0.8")  # another robot still gets one
    assert len(store.ids()) == 3


@pytest.mark.parametrize("trial", range(10))
def test_ten_power_cuts_at_random_points_of_the_journal_tail_lose_nothing_acknowledged(rt, tmp_path, trial):
    """The in-flight batch's record is cut at a random byte (or its pages hold zeros or noise): every batch the
    store acknowledged comes back exactly, and the session journals on from there."""
    rng = np.random.default_rng(trial)
    store = SessionStore(rt, tmp_path, snapshot_every=1000)
    sid, _ = store.create(mode="bayes", seed=0)
    ts = transitions(int(rng.integers(3, 20)), reward=False)
    observe(store, sid, ts)
    journal = tmp_path / f"{sid}.journal"
    record = jn.frame(jn.encode_transitions(transitions(3, seed=trial), 3, 1))
    cut = int(rng.integers(1, len(record)))
    tail = [record[:cut], b"\0" * cut, record[:8] + rng.bytes(max(cut - 8, 0))][trial % 3]
    journal.write_bytes(journal.read_bytes() + tail)
    again = SessionStore(rt, tmp_path, snapshot_every=1000)
    again.restore()
    same_belief(again.get(sid).session, reference(rt, ts))
