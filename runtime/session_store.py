"""Live HTTP sessions by id: limits (count, idle TTL), idempotent retries, and a state dir (`SessionDisk`).

With a state dir, sessions are journaled (`mbmrl.runtime.session_disk` states what survives a crash or a power
cut) and restored on restart. A change that cannot be saved is undone in memory and raises `PersistError`
(HTTP 503). Sessions idle longer than `ttl_s` (0: never) are evicted with their files, lazily on access and on
create, and on restore (judged by their files' modification times); restore keeps the `max_sessions` most
recently changed sessions and leaves the files of the others. `apply(..., key=K)` remembers the last `REPLIES`
answers per session by idempotency key (in memory), so a retried request is answered without being re-applied.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from .artifact import sha256_file
from .model import Runtime
from .recording import RecordSettings
from .session import Session
from .session_disk import Entry, PersistError, SessionDisk

__all__ = ["PersistError", "SessionStore", "TooManySessions", "UnknownSession"]
log = logging.getLogger("mbmrl.serve")
REPLIES = 64  # remembered answers per session (and remembered creates) for idempotent retries
SNAPSHOT_ROUTES = ("reset", "reference")  # changes the journal does not hold: a full snapshot each


class UnknownSession(LookupError):
    """No live session has this id."""


class TooManySessions(RuntimeError):
    """The server holds `max_sessions` already."""


class SessionStore:
    """Live sessions by id, optionally journaled to `state_dir` (see the module docstring)."""

    ID = re.compile(r"[0-9a-f]{32}")

    def __init__(self, rt: Runtime, state_dir: str | Path | None = None, max_sessions: int = 1024, *,
                 fsync_interval_ms: int = 0, snapshot_every: int = 200, ttl_s: float = 86400.0,
                 max_per_client: int = 0, recording: RecordSettings | None = None):
        if ttl_s < 0:
            raise ValueError("ttl_s must be >= 0 (0: sessions never expire)")
        self.rt, self.max_sessions, self.ttl_s, self.max_per_client = rt, max_sessions, ttl_s, max_per_client
        self.recording = recording
        self.artifact_id = sha256_file(rt.path / "manifest.json") if rt.path else "in-memory"
        self.disk = SessionDisk(state_dir, rt, self.artifact_id, fsync_interval_ms=fsync_interval_ms,
                                snapshot_every=snapshot_every) if state_dir else None
        self._entries: dict[str, Entry] = {}
        self._created: OrderedDict[str, str] = OrderedDict()  # create's idempotency key -> session id
        self._lock = threading.Lock()
        if self.disk:
            self.disk.start(self._items)

    def _items(self) -> list[tuple[str, Entry]]:
        with self._lock:
            return list(self._entries.items())

    def ids(self) -> list[str]:
        """Ids of the live sessions."""
        self._expire()
        with self._lock:
            return list(self._entries)

    def get(self, session_id: str) -> Entry:
        """The live session `session_id`, or UnknownSession (404) with what to do; marks it used."""
        now = time.time()
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is not None and not self._idle(entry, now):
                entry.last_used = now
                return entry
            if entry is not None:
                del self._entries[session_id]
        if entry is not None:
            self._evict(session_id, entry)
        raise UnknownSession(f"no session {session_id!r}: create one with POST /v1/sessions (sessions end on "
                             "DELETE, after --session-ttl-s idle, or on restart without --state-dir)")

    def create(self, mode=None, planner=None, cost=None, seed=None, task_params=None,
               key: str | None = None, owner: str | None = None, reference=None, window=None,
               guard=None, gain=None) -> tuple[str, Session]:
        """A new session (ValueError for bad settings, TooManySessions when full, PersistError when it can't be
        saved: then nothing is left behind); a repeated idempotency `key` returns the session it created."""
        self._expire()
        with self._lock:
            known = self._entries.get(self._created.get(key, "")) if key else None
            if key and known is not None:
                return self._created[key], known.session
            self._check_room(owner)
        session = Session(self.rt, mode, planner=planner, cost=cost, seed=seed, task_params=task_params,
                          reference=reference, window=window, guard=guard, gain=gain)
        meta = {"mode": session.mode, "planner": session.planner.to_dict(), "cost": session.cost.to_dict(),
                "seed": seed, "task_params": task_params, "window": window, "artifact": self.artifact_id,
                "guard": False if session.guard_config is None else session.guard_config.to_dict(),
                "gain": False if session.gain_config is None else session.gain_config.to_dict(),
                "generation": 0, "owner": owner}
        session_id, entry = secrets.token_hex(16), Entry(session, meta, last_used=time.time())
        self._record(session_id, entry)
        with session.lock:
            if self.disk:
                try:
                    self.disk.snapshot(session_id, entry)
                except PersistError:
                    self.disk.remove(session_id)  # a failed create leaves nothing behind
                    raise
            with self._lock:
                try:
                    self._check_room(owner)
                except TooManySessions:
                    if self.disk:
                        self.disk.remove(session_id)
                    raise
                self._entries[session_id] = entry
                if key:
                    self._created[key] = session_id
                    while len(self._created) > REPLIES:
                        self._created.popitem(last=False)
        return session_id, session

    def apply(self, session_id: str, route: str, fn: Callable[[Session], dict], *, key: str | None = None,
              transitions: list[dict] | None = None) -> dict:
        """Run `fn(session)` under the session lock and persist the change `route` made; returns fn's answer.

        `route` is "observe" or "step" (journal `transitions`), one of SNAPSHOT_ROUTES (snapshot) or another change
        ("act", and the plan of a "step": written with the next snapshot). If `fn` raises or the change can't be saved
        (PersistError), the session's state is put back as it was. An answer given before for the same
        (route, idempotency `key`) is returned again without running `fn`.
        """
        entry = self.get(session_id)
        s = entry.session
        with s.lock:
            if entry.deleted:
                raise UnknownSession(f"no session {session_id!r}")
            if key is not None and (route, key) in entry.replies:
                return entry.replies[(route, key)]
            before = s.state_dict()
            try:
                out = fn(s)
                if self.disk and route in ("observe", "step") and transitions:
                    self.disk.journal(session_id, entry, transitions)
                elif self.disk and route in SNAPSHOT_ROUTES:
                    self.disk.snapshot(session_id, entry)
            except BaseException:
                s.load_state_dict(before)
                raise
            entry.dirty = entry.dirty or not (route == "observe" or route in SNAPSHOT_ROUTES)
            if key is not None:
                entry.replies[(route, key)] = out
                while len(entry.replies) > REPLIES:
                    entry.replies.popitem(last=False)
            return out

    def delete(self, session_id: str) -> None:
        """End a session and remove its files."""
        entry = self.get(session_id)
        with self._lock:
            if self._entries.pop(session_id, None) is None:
                raise UnknownSession(f"no session {session_id!r}")
        self._evict(session_id, entry)

    def close(self) -> None:
        """Clean shutdown: every session's plan and RNG reach the disk too (a snapshot where anything changed),
        and every recording its summary."""
        if self.disk:
            self.disk.close(self._items())
        for _, entry in self._items():
            if entry.session.recorder is not None:
                entry.session.recorder.close()

    def _record(self, session_id: str, entry: Entry) -> None:
        """With --record: a recorder for this session (its id names the files)."""
        if self.recording is not None:
            m = entry.meta
            entry.session.recorder = rec = self.recording.recorder(session_id, {
                "mode": m["mode"], "seed": m["seed"], "artifact": {"manifest_sha256": self.artifact_id}})
            tracking = entry.session.tracking
            if tracking.reference is not None:  # held since creation (or restored): the recording starts with it
                rec.reference(tracking.reference.to_dict(), tracking.time)

    # ----------------------------------------------------------------- limits
    def _evict(self, session_id: str, entry: Entry) -> None:
        """Forget a session already taken out of `_entries`, with its files."""
        with entry.session.lock:
            entry.deleted = True
            if self.disk:
                self.disk.remove(session_id)
            if entry.session.recorder is not None:
                entry.session.recorder.close(wait=False)

    def _idle(self, entry: Entry, now: float) -> bool:
        return self.ttl_s > 0 and now - entry.last_used > self.ttl_s

    def _expire(self) -> None:
        """Evict every session idle longer than the TTL."""
        now = time.time()
        with self._lock:
            gone = [(i, e) for i, e in self._entries.items() if self._idle(e, now)]
            for session_id, _ in gone:
                del self._entries[session_id]
        for session_id, entry in gone:
            log.warning("session %s evicted: idle for more than %g s", session_id, self.ttl_s)
            self._evict(session_id, entry)

    def _check_room(self, owner: str | None = None) -> None:
        """TooManySessions unless there is room for one more, also for this client (store lock held)."""
        if len(self._entries) >= self.max_sessions:
            raise TooManySessions(f"this server holds its maximum of {self.max_sessions} sessions: "
                                  "DELETE /v1/sessions/{id} the ones you no longer need")
        if self.max_per_client and owner is not None:
            held = sum(1 for e in self._entries.values() if e.meta.get("owner") == owner)
            if held >= self.max_per_client:
                raise TooManySessions(f"client {owner} holds its maximum of {self.max_per_client} sessions: "
                                      "DELETE /v1/sessions/{id} the ones you no longer need")

    # ----------------------------------------------------------------- restore
    def restore(self) -> int:
        """Load the `max_sessions` most recently changed sessions of this artifact from the state dir.

        Damaged files (empty, truncated, garbage) are reported and skipped, a torn journal tail is cut off,
        sessions idle longer than the TTL are deleted, and sessions over the cap are reported (files kept).
        """
        if self.disk is None:
            return 0
        now, skipped = time.time(), []
        for used, session_id in self.disk.found():
            if not self.ID.fullmatch(session_id):
                continue
            if self.ttl_s and now - used > self.ttl_s:
                log.warning("session %s deleted: idle for more than %g s", session_id, self.ttl_s)
                self.disk.remove(session_id)
                continue
            if len(self._entries) >= self.max_sessions:
                skipped.append(session_id)
                continue
            try:
                entry = self.disk.load(session_id)
            except Exception as e:  # noqa: BLE001 - a damaged file must never keep the server from starting
                log.warning("not restoring session %s: %s: %s", session_id, type(e).__name__, e)
                continue
            entry.last_used = used
            self._record(session_id, entry)  # a restored session's recording goes on in a new file
            with self._lock:
                self._entries[session_id] = entry
        if skipped:
            log.warning("not restoring %d less recently used session(s) over --max-sessions %d (files kept): %s",
                        len(skipped), self.max_sessions, " ".join(skipped))
        return len(self._entries)
