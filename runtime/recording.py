"""Session recordings in MCAP: what a robot observed, what it was told to do and why, as it happened.

One file series per session (`DIR/SESSION-0000.mcap`, `-0001`, ... rotated at a size or an age), JSON
messages on JSON-schema channels, so Foxglove and the `mcap` CLI read them as they are:

- `/mbmrl/transition`: obs, action, next_obs, reward, the surprise the session reported, n_observed;
- `/mbmrl/plan`: the obs planned from, the action, plan, predicted states, expected cost, samples used,
  plan time and the adaptation guard's state (the model planned with, both predictors' running errors);
- `/mbmrl/session`: the session's mode, seed and artifact once at the start of every file.

Writing never blocks the control path: a call only puts the record on a queue; one background thread
encodes and writes, closes a chunk and flushes to the OS every FLUSH_S (so a `kill -9` loses at most the
records of the last FLUSH_S), and writes each file's summary when it rotates or the session ends.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .types import ActResult, jsonable

orjson: Any
try:
    import orjson  # ~10x faster for these messages, numpy arrays as they are
except ImportError:
    orjson = None

FLUSH_S = 0.5  # close a chunk and hand it to the OS at least this often
BATCH_S = 0.05  # the writer thread wakes this often and writes what was queued
VEC = {"type": "array", "items": {"type": "number"}}
MAT = {"type": "array", "items": VEC}
SCHEMAS: dict[str, dict] = {
    "/mbmrl/session": {"type": "object", "properties": {"session_id": {"type": "string"}, "mode": {"type": "string"},
                                                        "seed": {"type": ["integer", "null"]},
                                                        "artifact": {"type": "object"}}},
    "/mbmrl/transition": {"type": "object", "properties": {
        "obs": VEC, "action": VEC, "next_obs": VEC, "reward": {"type": ["number", "null"]},
        "surprise": {"type": "number"}, "n_observed": {"type": "integer"}}},
    "/mbmrl/plan": {"type": "object", "properties": {
        "obs": VEC, "action": VEC, "plan": MAT, "predicted_obs": MAT, "expected_cost": {"type": ["number", "null"]},
        "samples_used": {"type": "integer"}, "plan_ms": {"type": "number"},
        "guard": {"type": ["object", "null"]}}},  # the model planned with and the running errors (`guard_report`)
    "/mbmrl/reference": {"type": "object", "properties": {  # the session's reference from here on (null: none)
        "reference": {"type": ["object", "null"]}, "time": {"type": "number"}}},
}


@dataclass(frozen=True)
class RecordSettings:
    """`mbmrl serve --record DIR`: where recordings go, and when a file is rotated."""

    directory: str
    max_bytes: int = 64 << 20
    max_seconds: float = 3600.0

    def __post_init__(self) -> None:
        _require_mcap()  # at start-up, not at the first session

    def recorder(self, name: str, info: dict) -> Recorder:
        """A recorder for one session."""
        return Recorder(self.directory, name, info, max_bytes=self.max_bytes, max_seconds=self.max_seconds)


def _require_mcap() -> None:
    try:
        import mcap  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError("recording needs the `mcap` package: pip install 'mbmrl[serve]' (or mcap)") from None


class _Writer:
    """The one background thread that writes every recorder's queue (started on first use)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True, name="mbmrl-recorder")
        self.thread.start()

    def _run(self) -> None:
        last_flush, dirty = time.monotonic(), set()
        while True:
            time.sleep(BATCH_S)  # wake in batches, not per record: the control thread keeps the GIL meanwhile
            while True:
                try:
                    rec, topic, t_ns, payload, done = self.jobs.get_nowait()
                except queue.Empty:
                    break
                try:
                    if topic is not None:
                        rec._write(topic, t_ns, payload)
                        dirty.add(rec)
                    if done is not None:
                        rec._finish()
                        dirty.discard(rec)
                        done.set()
                except Exception as e:  # noqa: BLE001 - a recording problem must never reach the control path
                    print(f"mbmrl recorder: {type(e).__name__}: {e}", flush=True)
            if dirty and time.monotonic() - last_flush >= FLUSH_S:
                for rec in dirty:
                    rec._flush()
                dirty.clear()
                last_flush = time.monotonic()


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _shared_writer() -> _Writer:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = _Writer()
        return _writer


class Recorder:
    """Records one session to DIR/NAME-NNNN.mcap. `transition`, `plan` and `close` return at once."""

    def __init__(self, directory: str | Path, name: str, info: dict | None = None, max_bytes: int = 64 << 20,
                 max_seconds: float = 3600.0, chunk_bytes: int = 64 << 10):
        _require_mcap()
        self.dir, self.name, self.info = Path(directory), name, info or {}
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_seconds, self.chunk_bytes = max_bytes, max_seconds, chunk_bytes
        self.files: list[Path] = []
        self._first = len(list(self.dir.glob(f"{name}-*.mcap")))  # a restored session goes on in a new file
        self._mcap: Any = None
        self._writer = _shared_writer()
        self.closed = False

    # ------------------------------------------------------------------ the control path (non-blocking)
    def transition(self, obs, action, next_obs, reward, surprise: float, n_observed: int) -> None:
        """Queue one observed transition with the surprise the session reported."""
        self._put("/mbmrl/transition", {"obs": obs, "action": action, "next_obs": next_obs, "reward": reward,
                                        "surprise": surprise, "n_observed": n_observed})

    def plan(self, obs, result: ActResult) -> None:
        """Queue one act/step answer (an `ActResult`) and the observation it planned from."""
        self._put("/mbmrl/plan", {"obs": obs, "action": result.action, "plan": result.plan,
                                  "predicted_obs": result.predicted_obs, "expected_cost": result.expected_cost,
                                  "samples_used": result.samples_used, "plan_ms": result.plan_ms,
                                  "guard": result.guard})

    def reference(self, reference: dict | None, time_s: float) -> None:
        """Queue a change of the session's reference trajectory (`Reference.to_dict()`, or None) and its clock."""
        self._put("/mbmrl/reference", {"reference": reference, "time": time_s})

    def close(self, wait: bool = True) -> None:
        """Write the summary and close the current file (after the records queued before)."""
        if self.closed:
            return
        self.closed = True
        done = threading.Event()
        self._writer.jobs.put((self, None, 0, None, done))
        if wait:
            done.wait(timeout=10)

    def _put(self, topic: str, payload: dict) -> None:
        if not self.closed:
            self._writer.jobs.put((self, topic, time.time_ns(), payload, None))

    # ------------------------------------------------------------------ the writer thread
    def _open(self, t_ns: int) -> None:
        from mcap.writer import CompressionType, Writer

        path = self.dir / f"{self.name}-{self._first + len(self.files):04d}.mcap"
        self._file = open(path, "wb")  # noqa: SIM115 - kept open across calls, closed in _finish
        self._mcap = Writer(self._file, chunk_size=self.chunk_bytes, compression=CompressionType.NONE)
        self._mcap.start(profile="", library="mbmrl")
        self._channels = {}
        for topic, schema in SCHEMAS.items():
            sid = self._mcap.register_schema(name=topic.rsplit("/", 1)[-1], encoding="jsonschema",
                                             data=json.dumps(schema).encode())
            self._channels[topic] = self._mcap.register_channel(topic=topic, message_encoding="json", schema_id=sid)
        self._opened_at, self._seq, self._bytes = time.monotonic(), 0, 0
        self.files.append(path)
        self._write("/mbmrl/session", t_ns, {"session_id": self.name, **self.info})  # as old as the first record

    def _write(self, topic: str, t_ns: int, payload: dict) -> None:
        if self._mcap is not None and (self._bytes > self.max_bytes
                                       or time.monotonic() - self._opened_at > self.max_seconds):
            self._finish()
        if self._mcap is None:
            self._open(t_ns)
        data = (orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) if orjson is not None
                else json.dumps(jsonable(payload), allow_nan=True).encode())
        self._mcap.add_message(channel_id=self._channels[topic], log_time=t_ns, publish_time=t_ns, data=data,
                               sequence=self._seq)
        self._seq += 1
        self._bytes += len(data) + 32  # the message record's own fields: about the file's growth, uncompressed

    def _flush(self) -> None:
        if self._mcap is not None:
            self._mcap.flush()

    def _finish(self) -> None:
        if self._mcap is not None:
            self._mcap.finish()
            self._file.close()
            self._mcap = None


def read_recording(paths: list[str | Path]) -> list[tuple[str, int, dict]]:
    """(topic, log time ns, message) of every message in the files, in order; a file cut short (the recording
    process was killed) gives every message up to its last complete chunk."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message
    from mcap.stream_reader import StreamReader

    out: list[tuple[str, int, dict]] = []
    for path in paths:
        topics: dict[int, str] = {}
        with open(path, "rb") as f:
            try:  # record by record, so that a missing end (no footer, a torn chunk) costs only what it holds
                for record in StreamReader(f).records:
                    if isinstance(record, Channel):
                        topics[record.id] = record.topic
                    elif isinstance(record, Message):
                        out.append((topics[record.channel_id], record.log_time, json.loads(record.data)))
            except (McapError, EOFError, ValueError):
                pass
    return out
