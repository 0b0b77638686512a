"""The on-disk format of one session's state: a snapshot (`ID.npz`) plus an append-only journal (`ID.journal`).

Snapshot: `Session.state_dict()` plus `__meta__` (UTF-8 JSON object as uint8) in one .npz, written with
`write_snapshot`: both new files are written and fsync'ed under temporary names first (so a full disk fails
before anything on disk changed), then moved into place (snapshot first) with a directory fsync after each
move. The meta holds a `generation`, and so does the journal's header.

Journal: a 16-byte header (b"MBJ1", u64 generation, u32 CRC32 of those 12 bytes), then records, each
`u32 length, u32 CRC32(payload), payload`; one record is one observe batch (all of its transitions or none).
A power cut can leave a torn or garbage tail: `read_journal` stops at the first record whose length or CRC
is wrong. A journal replays onto the snapshot only when their generations match: a crash between the two
moves of `write_snapshot` leaves a new snapshot and an old journal whose records the snapshot already holds.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"MBJ1"
_HEADER = struct.Struct("<4sQ")  # magic, generation; followed by u32 CRC32 of these 12 bytes
_RECORD = struct.Struct("<II")  # payload length, CRC32(payload)
HEADER_SIZE = _HEADER.size + 4


def write_all(fd: int, data: bytes) -> int:
    """Write every byte of `data` (os.write may write less than asked); returns len(data)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def fsync_dir(path: Path) -> None:
    """Make renames and new names in directory `path` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tmp(path: Path, data: bytes) -> Path:
    """`data` in a new fsync'ed file next to `path` (`.NAME.tmp`); removed again if anything fails."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def journal_header(generation: int) -> bytes:
    """The 16 bytes that start a journal of this generation."""
    head = _HEADER.pack(MAGIC, generation)
    return head + struct.pack("<I", zlib.crc32(head))


def frame(payload: bytes) -> bytes:
    """One journal record: length, CRC32, payload."""
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def write_snapshot(snapshot: Path, journal: Path, data: bytes, generation: int) -> int:
    """Atomically and durably replace `snapshot` with `data` and `journal` with an empty one of `generation`.

    Returns the bytes written. On an OSError nothing on disk changed, or (a failed move or directory fsync)
    the new snapshot is in place with the old journal, which then no longer replays (older generation).
    """
    tmps = [_write_tmp(journal, journal_header(generation))]
    try:
        tmps.append(_write_tmp(snapshot, data))
        os.replace(tmps[-1], snapshot)
        tmps.pop()
        fsync_dir(snapshot.parent)
        os.replace(tmps[0], journal)
        tmps.pop()
        fsync_dir(journal.parent)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return len(data) + HEADER_SIZE


def append(journal: Path, payload: bytes, *, sync: bool) -> int:
    """Append one record (fsync'ed when `sync`); returns the bytes written.

    On an OSError the journal is cut back to its previous length; if even that fails, the error is raised
    with `truncated = False` on it and the journal must not be appended to again (write a snapshot).
    """
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        try:
            n = write_all(fd, frame(payload))
            if sync:
                os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)
                e.truncated = True  # type: ignore[attr-defined]
            except OSError:
                e.truncated = False  # type: ignore[attr-defined]
            raise
        return n
    finally:
        os.close(fd)


def sync_file(path: Path) -> None:
    """fsync a file (what earlier unsynced appends wrote reaches the disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(journal: Path) -> tuple[int, list[bytes], int, int]:
    """-> (generation, payloads of the valid records, end of the valid part, bytes after it).

    A ValueError when the header itself is missing or damaged; a torn or garbage tail is not an error:
    the caller sees how many bytes follow the last valid record (and may truncate them away).
    """
    data = journal.read_bytes()
    if len(data) < HEADER_SIZE or zlib.crc32(data[:_HEADER.size]) != struct.unpack_from("<I", data, 12)[0]:
        raise ValueError(f"damaged journal header ({len(data)} bytes)")
    magic, generation = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a journal (wrong magic)")
    payloads, pos = [], HEADER_SIZE
    while pos + _RECORD.size <= len(data):
        length, crc = _RECORD.unpack_from(data, pos)
        start, end = pos + _RECORD.size, pos + _RECORD.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        payloads.append(data[start:end])
        pos = end
    return generation, payloads, pos, len(data) - pos


# ---------------------------------------------------------------------------------- record contents
def encode_transitions(transitions: list[dict], obs_dim: int, action_dim: int) -> bytes:
    """One observe batch as float32 rows (obs, action, next_obs, reward; NaN = no reward given).

    float32 is what `Session.observe` converts every input to, so a replay folds exactly the same numbers.
    """
    rows = np.empty((len(transitions), 2 * obs_dim + action_dim + 1), dtype=np.float32)
    for row, t in zip(rows, transitions, strict=True):
        reward = t.get("reward")
        row[:] = np.concatenate([np.asarray(t["obs"], np.float32).reshape(-1),
                                 np.asarray(t["action"], np.float32).reshape(-1),
                                 np.asarray(t["next_obs"], np.float32).reshape(-1),
                                 [np.nan if reward is None else reward]])
    return rows.tobytes()


def decode_transitions(payload: bytes, obs_dim: int, action_dim: int) -> list[dict]:
    """The transitions `encode_transitions` wrote (a ValueError if the size does not fit the dims)."""
    rows = np.frombuffer(payload, dtype=np.float32).reshape(-1, 2 * obs_dim + action_dim + 1)
    o, a = obs_dim, action_dim
    return [{"obs": r[:o], "action": r[o:o + a], "next_obs": r[o + a:2 * o + a],
             "reward": None if np.isnan(r[-1]) else float(r[-1])} for r in rows]


def encode_snapshot(state: dict[str, np.ndarray], meta: dict) -> bytes:
    """A snapshot file's bytes: the session's arrays and `__meta__`."""
    buf = io.BytesIO()
    np.savez(buf, **state, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))  # type: ignore[arg-type]
    return buf.getvalue()


def decode_snapshot(data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) from a snapshot file's bytes; raises (ValueError, EOFError, ...) on a damaged file."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    if not isinstance(meta, dict):
        raise ValueError(f"__meta__ is a JSON {type(meta).__name__}, not an object")
    return arrays, meta
