"""How live sessions reach a state directory: when to journal, snapshot and fsync, and how one comes back.

The files are described in `mbmrl.runtime.journal`. The guarantees:
- create and reset write a snapshot (fsync'ed); every observe batch is one journal record, written before the
  request is answered, and every `snapshot_every` journaled transitions a new snapshot starts a new journal.
  `act` writes nothing: its plan (warm start) and RNG state reach the disk with the next snapshot, or on a
  clean shutdown. After a crash they are those of the last snapshot (at most `snapshot_every` transitions old);
  h, W and the counters are exact, because the journal is replayed through `Session.observe`.
- `fsync_interval_ms=0` (the default): every journal record is fsync'ed before the answer, so an acknowledged
  observe survives a power cut. `N > 0`: a background thread fsyncs journals every N ms; a power cut loses at
  most the observes acknowledged in the last N ms (plus one fsync's duration), a process crash loses nothing.
- A change that cannot be saved (disk full, I/O error) raises `PersistError`; the caller undoes it in memory,
  so memory and disk agree and a retry applies it once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import journal as jn
from .model import Runtime
from .session import Session

log = logging.getLogger("mbmrl.serve")


class PersistError(RuntimeError):
    """A change could not be saved to the state dir; it was not applied (HTTP 503)."""


@dataclass
class Entry:
    """A live session and its bookkeeping (fields other than `last_used` change under the session lock)."""

    session: Session
    meta: dict  # what rebuilds the session: mode, planner, cost, seed, task_params, artifact, generation
    last_used: float = 0.0  # time.time() of the last access
    since_snapshot: int = 0  # transitions journaled since the last snapshot
    dirty: bool = False  # changed since the last snapshot in a way the journal does not hold (act)
    needs_snapshot: bool = False  # the journal on disk can't be appended to: the next change writes a snapshot
    unsynced: bool = False  # journal records not fsync'ed yet (fsync_interval_ms > 0)
    deleted: bool = False
    replies: OrderedDict = field(default_factory=OrderedDict)  # (route, idempotency key) -> answer


class SessionDisk:
    """The state directory: `ID.npz` snapshots and `ID.journal` journals, with the policy in the module doc."""

    def __init__(self, state_dir: str | Path, rt: Runtime, artifact_id: str, *, fsync_interval_ms: int = 0,
                 snapshot_every: int = 200):
        if fsync_interval_ms < 0 or snapshot_every < 1:
            raise ValueError("need fsync_interval_ms >= 0 and snapshot_every >= 1")
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rt, self.artifact_id = rt, artifact_id
        self.fsync_interval_ms, self.snapshot_every = fsync_interval_ms, snapshot_every
        self.bytes_written = 0  # state bytes written since start (snapshots and journal records)
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def path(self, session_id: str, suffix: str) -> Path:
        """`DIR/ID.npz` (snapshot) or `DIR/ID.journal`."""
        return self.dir / f"{session_id}{suffix}"

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.bytes_written += n

    # ----------------------------------------------------------------- writing (session lock held)
    def snapshot(self, session_id: str, entry: Entry) -> None:
        """Write the whole state as a new generation with an empty journal; PersistError if it fails."""
        if entry.deleted:
            return
        meta = {**entry.meta, "generation": entry.meta["generation"] + 1}
        try:
            data = jn.encode_snapshot(entry.session.state_dict(), meta)
            self._count(jn.write_snapshot(self.path(session_id, ".npz"), self.path(session_id, ".journal"),
                                          data, meta["generation"]))
        except OSError as e:
            entry.needs_snapshot = True
            raise PersistError(f"could not save session {session_id} ({e}); the change was not applied: "
                               "free disk space on the server and retry") from e
        entry.meta = meta
        entry.since_snapshot, entry.dirty, entry.needs_snapshot, entry.unsynced = 0, False, False, False

    def journal(self, session_id: str, entry: Entry, transitions: list[dict]) -> None:
        """Journal one observe batch as one record; a snapshot instead when one is due or needed."""
        if entry.needs_snapshot:
            return self.snapshot(session_id, entry)
        payload = jn.encode_transitions(transitions, self.rt.obs_dim, self.rt.action_dim)
        try:
            self._count(jn.append(self.path(session_id, ".journal"), payload, sync=not self.fsync_interval_ms))
        except OSError as e:
            entry.needs_snapshot = not getattr(e, "truncated", False)
            raise PersistError(f"could not save session {session_id} ({e}); the transitions were not applied: "
                               "free disk space on the server and retry") from e
        entry.unsynced = bool(self.fsync_interval_ms)
        entry.since_snapshot += len(transitions)
        if entry.since_snapshot >= self.snapshot_every:
            try:
                self.snapshot(session_id, entry)
            except PersistError as e:  # the batch is safe in the journal; the next change retries the snapshot
                log.warning("session %s: periodic snapshot failed (%s)", session_id, e)

    def remove(self, session_id: str) -> None:
        """Remove a session's files: the snapshot first (a journal without its snapshot is never restored)."""
        for suffix in (".npz", ".journal"):
            try:
                self.path(session_id, suffix).unlink(missing_ok=True)
            except OSError as e:
                log.warning("could not remove %s: %s", self.path(session_id, suffix), e)

    # ----------------------------------------------------------------- fsync thread, shutdown
    def start(self, entries: Callable[[], list[tuple[str, Entry]]]) -> None:
        """With `fsync_interval_ms > 0`, fsync the journals of `entries()` with unsynced records that often."""
        if self.fsync_interval_ms and self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, args=(entries,), name="mbmrl-fsync",
                                             daemon=True)
            self._flusher.start()

    def _flush_loop(self, entries: Callable[[], list[tuple[str, Entry]]]) -> None:
        while not self._stop.wait(self.fsync_interval_ms / 1000):
            for session_id, entry in entries():
                with entry.session.lock:
                    if not entry.unsynced or entry.deleted:
                        continue
                    try:
                        jn.sync_file(self.path(session_id, ".journal"))
                        entry.unsynced = False
                    except OSError as e:
                        log.warning("session %s: fsync failed (%s); next change writes a snapshot", session_id, e)
                        entry.needs_snapshot = True

    def close(self, entries: list[tuple[str, Entry]]) -> None:
        """Stop the fsync thread and snapshot every session with changes since its last snapshot."""
        self._stop.set()
        if self._flusher:
            self._flusher.join()
        for session_id, entry in entries:
            with entry.session.lock:
                if entry.dirty or entry.unsynced or entry.needs_snapshot or entry.since_snapshot:
                    try:
                        self.snapshot(session_id, entry)
                    except PersistError as e:
                        log.warning("session %s: final snapshot failed (%s)", session_id, e)

    # ----------------------------------------------------------------- restore
    def found(self) -> list[tuple[float, str]]:
        """(last change as time.time(), id) of every session on disk, most recent first; drops temp files."""
        for tmp in self.dir.glob(".*.tmp"):  # left by a crash mid-write
            tmp.unlink(missing_ok=True)
        out = []
        for path in self.dir.glob("*.npz"):
            try:
                used = max(p.stat().st_mtime for p in (path, path.with_suffix(".journal")) if p.exists())
            except (OSError, ValueError):
                continue
            out.append((used, path.stem))
        return sorted(out, reverse=True)

    def load(self, session_id: str) -> Entry:
        """Rebuild one session: its snapshot, then its journal's records of the same generation (any exception
        means the snapshot is unusable); a torn journal tail is cut off."""
        arrays, meta = jn.decode_snapshot(self.path(session_id, ".npz").read_bytes())
        if meta.get("artifact") != self.artifact_id:
            raise ValueError("it was saved with a different artifact (manifest.json differs)")
        session = Session(self.rt, meta["mode"], planner=meta["planner"], cost=meta["cost"],
                          seed=meta["seed"], task_params=meta["task_params"], window=meta.get("window"),
                          guard=meta.get("guard"), gain=meta.get("gain"))
        session.load_state_dict(arrays)
        entry = Entry(session, {**meta, "generation": int(meta.get("generation", 0))})
        path = self.path(session_id, ".journal")
        try:
            generation, payloads, end, torn = jn.read_journal(path)
        except (OSError, ValueError) as e:
            log.warning("session %s: journal unreadable (%s): restored from its snapshot only", session_id, e)
            entry.needs_snapshot = True
            return entry
        if generation != entry.meta["generation"]:  # a crash between the snapshot's two moves: nothing to replay
            entry.needs_snapshot = True
            return entry
        for payload in payloads:
            before = session.state_dict()
            try:
                batch = jn.decode_transitions(payload, self.rt.obs_dim, self.rt.action_dim)
                session.observe_many(batch)
            except ValueError as e:  # a record that fits its CRC but not this artifact: keep what came before
                log.warning("session %s: journal replay stopped at a bad record (%s)", session_id, e)
                session.load_state_dict(before)
                entry.needs_snapshot = True
                return entry
            entry.since_snapshot += len(batch)
        if torn:
            log.warning("session %s: dropped a torn journal tail of %d bytes", session_id, torn)
            try:
                with path.open("r+b") as f:
                    f.truncate(end)
            except OSError:
                entry.needs_snapshot = True
        return entry
