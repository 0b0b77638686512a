"""Live HTTP sessions by id, optionally mirrored to a state directory and restored on restart."""

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import sha256_file
from .model import Runtime
from .session import Session

log = logging.getLogger("mbmrl.serve")


class UnknownSession(LookupError):
    """No live session has this id."""


class TooManySessions(RuntimeError):
    """The server holds `max_sessions` already."""


@dataclass
class _Entry:
    session: Session
    meta: dict  # what rebuilds the session: mode, planner, cost, seed, task_params, artifact
    deleted: bool = False


class SessionStore:
    """Live sessions by id; with a state dir, each one is mirrored to `DIR/<id>.npz` after every change.

    The file holds `Session.state_dict()` plus `__meta__` (UTF-8 JSON as uint8), written to a temporary
    file and moved into place with `os.replace`, so a crash leaves the old state or the new, never half.
    """

    ID = re.compile(r"[0-9a-f]{32}")

    def __init__(self, rt: Runtime, state_dir: str | Path | None = None, max_sessions: int = 1024):
        self.rt = rt
        self.state_dir = Path(state_dir) if state_dir else None
        if self.state_dir:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self.max_sessions = max_sessions
        self.artifact_id = sha256_file(rt.path / "manifest.json") if rt.path else "in-memory"
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """Ids of the live sessions."""
        with self._lock:
            return list(self._entries)

    def get(self, session_id: str) -> _Entry:
        """The live session `session_id`, or UnknownSession (404) with what to do."""
        with self._lock:
            entry = self._entries.get(session_id)
        if entry is None:
            raise UnknownSession(f"no session {session_id!r}: create one with POST /v1/sessions "
                                 "(sessions end on DELETE, or on restart without --state-dir)")
        return entry

    def create(self, mode=None, planner=None, cost=None, seed=None, task_params=None) -> tuple[str, Session]:
        """A new session (ValueError for bad settings, TooManySessions when full), persisted at once."""
        session = Session(self.rt, mode, planner=planner, cost=cost, seed=seed, task_params=task_params)
        meta = {"mode": session.mode, "planner": session.planner.to_dict(), "cost": session.cost.to_dict(),
                "seed": seed, "task_params": task_params, "artifact": self.artifact_id}
        session_id, entry = secrets.token_hex(16), _Entry(session, meta)
        with self._lock:
            if len(self._entries) >= self.max_sessions:
                raise TooManySessions(f"this server holds its maximum of {self.max_sessions} sessions: "
                                      "DELETE /v1/sessions/{id} the ones you no longer need")
            self._entries[session_id] = entry
        with session.lock:
            self.persist(session_id, entry)
        return session_id, session

    def delete(self, session_id: str) -> None:
        """End a session and remove its state file."""
        entry = self.get(session_id)
        with self._lock:
            if self._entries.pop(session_id, None) is None:
                raise UnknownSession(f"no session {session_id!r}")
        with entry.session.lock:
            entry.deleted = True
            if self.state_dir:
                (self.state_dir / f"{session_id}.npz").unlink(missing_ok=True)

    def persist(self, session_id: str, entry: _Entry) -> None:
        """Write the session's state atomically (call with the session lock held)."""
        if self.state_dir is None or entry.deleted:
            return
        arrays = dict(entry.session.state_dict())
        arrays["__meta__"] = np.frombuffer(json.dumps(entry.meta).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{session_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, self.state_dir / f"{session_id}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def restore(self) -> int:
        """Load every persisted session of this artifact; unreadable files are reported and skipped."""
        if self.state_dir is None:
            return 0
        for tmp in self.state_dir.glob(".*.tmp"):  # left by a crash mid-write
            tmp.unlink(missing_ok=True)
        n = 0
        for path in sorted(self.state_dir.glob("*.npz")):
            if not self.ID.fullmatch(path.stem):
                continue
            try:
                entry = self._load(path)
            except (OSError, ValueError, KeyError, SyntaxError, zipfile.BadZipFile) as e:
                log.warning("not restoring session from %s: %s", path, e)
                continue
            with self._lock:
                self._entries[path.stem] = entry
            n += 1
        return n

    def _load(self, path: Path) -> _Entry:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(bytes(arrays.pop("__meta__")).decode())
        if meta.get("artifact") != self.artifact_id:
            raise ValueError("it was saved with a different artifact (manifest.json differs)")
        session = Session(self.rt, meta["mode"], planner=meta["planner"], cost=meta["cost"],
                                      seed=meta["seed"], task_params=meta["task_params"])
        session.load_state_dict(arrays)
        return _Entry(session, meta)


