"""`mbmrl serve ARTIFACT`: run the HTTP API (`mbmrl.runtime.server`) under uvicorn. No torch needed."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .flags import add_dataclass_args, dataclass_from_args


@dataclass(frozen=True)
class ServeConfig:
    """Settings of `mbmrl serve` (one flag per field)."""

    artifact: str = field(metadata={"help": "artifact directory written by `mbmrl export`"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface to bind; loopback by default"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    token: str = field(default="", metadata={
        "help": "require 'Authorization: Bearer TOKEN' on every route but /healthz (visible in the process list: "
                "prefer --token-file or MBMRL_TOKEN); empty: --token-file, else the MBMRL_TOKEN environment "
                "variable, else no token (loopback only, unless --insecure)"})
    token_file: str = field(default="", metadata={"help": "read the token from this file (first line)"})
    insecure: bool = field(default=False, metadata={
        "help": "allow serving a non-loopback --host without a token (anyone on the network can drive it)"})
    state_dir: str = field(default="", metadata={
        "help": "journal every session here (each observe before it is answered; act's plan and RNG with the next "
                "snapshot) and restore them on start; empty: memory only"})
    fsync_interval_ms: int = field(default=0, metadata={
        "help": "with --state-dir: 0 fsyncs each observe before answering (an acknowledged transition survives a "
                "power cut); N > 0 fsyncs every N ms (fewer flash writes; a power cut loses at most the last N ms "
                "of acknowledged transitions; a crash of the server alone loses nothing)"})
    snapshot_every: int = field(default=200, metadata={
        "help": "with --state-dir: write a full snapshot (and start a new journal) every this many transitions; "
                "after a crash, plans and RNG states are those of the last snapshot"})
    session_ttl_s: float = field(default=86400.0, metadata={
        "help": "evict sessions (and their files) idle longer than this many seconds; 0: never"})
    threads: int = field(default=1, metadata={"help": "ONNX Runtime intra-op threads per graph"})
    precision: str = field(default="fp32", metadata={
        "help": "rollout graphs to plan with: 'fp32' or 'int8' (an artifact exported with --int8; faster, with "
                "the error its manifest states)"})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "larger request bodies get 413"})
    body_timeout: float = field(default=5.0, metadata={
        "help": "seconds a request body may take to arrive; slower (or shorter than declared) bodies get 408"})
    max_plan_work: int = field(default=256 * 4 * 30, metadata={
        "help": "largest planner.samples x iterations x horizon a session or request may ask for (else 422)"})
    plan_slots: int = field(default=2, metadata={
        "help": "acts that may plan at the same time (bounds CPU and memory); others wait, up to 10 s, then 503"})
    docs: bool = field(default=False, metadata={
        "help": "serve Swagger UI at /docs and ReDoc at /redoc (their assets come from a CDN: blank offline); "
                "the OpenAPI schema is always at /openapi.json"})
    max_sessions: int = field(default=1024, metadata={
        "help": "more concurrent sessions get 429; a restart restores the most recently used this many"})
    max_sessions_per_client: int = field(default=256, metadata={
        "help": "sessions one client address may hold (more get 429); 0: no per-client quota"})
    record: str = field(default="", metadata={
        "help": "record every session (transitions, plans, surprise, timestamps) as MCAP files in this directory "
                "(Foxglove and `mcap` read them; `mbmrl replay` re-runs them); empty: no recording"})
    record_max_mb: float = field(default=64.0, metadata={"help": "with --record: start a new file past this size"})
    record_max_minutes: float = field(default=60.0, metadata={
        "help": "with --record: start a new file after this many minutes"})
    log_level: str = field(default="warning", metadata={
        "help": "uvicorn log level (debug, info, warning, error)"})


def serve(cfg: ServeConfig) -> None:
    """Load the artifact and serve it until interrupted; prints the URL once."""
    import uvicorn

    from .loader import load
    from .recording import RecordSettings
    from .server import create_app

    token = _token(cfg)
    if not token and not cfg.insecure and not _is_loopback(cfg.host):
        raise ValueError(f"refusing to serve {cfg.host} (not loopback) without a token: set MBMRL_TOKEN or pass "
                         "--token-file PATH, or pass --insecure to let anyone on the network drive the server")
    # verified first: a broken artifact is one line (exit 2)
    runtime = load(cfg.artifact, threads=cfg.threads, precision=cfg.precision)
    app = create_app(cfg.artifact, runtime=runtime, token=token or None, state_dir=cfg.state_dir or None,
                     threads=cfg.threads,
                     max_body_bytes=cfg.max_body_bytes, max_sessions=cfg.max_sessions,
                     max_sessions_per_client=cfg.max_sessions_per_client,
                     fsync_interval_ms=cfg.fsync_interval_ms, snapshot_every=cfg.snapshot_every,
                     session_ttl_s=cfg.session_ttl_s, body_timeout=cfg.body_timeout,
                     max_plan_work=cfg.max_plan_work, plan_slots=cfg.plan_slots, docs=cfg.docs,
                     record=RecordSettings(cfg.record, int(cfg.record_max_mb * 2**20), cfg.record_max_minutes * 60)
                     if cfg.record else None)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    notes = ["bearer token required" if token else "no token", "schema at /openapi.json"]
    line = f"mbmrl serve: http://{host}:{cfg.port} ({', '.join(notes + (['docs at /docs'] if cfg.docs else []))})"

    class Server(uvicorn.Server):
        """Prints `line` once the artifact is verified and loaded (lifespan) and the socket is bound."""

        async def startup(self, sockets=None) -> None:
            """uvicorn's startup, then the line."""
            await super().startup(sockets=sockets)
            if self.started:
                print(line, flush=True)

    server = Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level,
                                   timeout_keep_alive=30, ws_max_size=cfg.max_body_bytes))
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn has logged why (e.g. the port is in use)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _token(cfg: ServeConfig) -> str:
    """--token, else the first line of --token-file, else MBMRL_TOKEN, else "" (no token)."""
    if cfg.token and cfg.token_file:
        raise ValueError("pass --token or --token-file, not both")
    if not cfg.token_file:
        return cfg.token or os.environ.get("MBMRL_TOKEN", "")
    path = Path(cfg.token_file)
    lines = path.read_text().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"--token-file {path}: the first line is empty")
    if path.stat().st_mode & 0o077:
        print(f"mbmrl serve: warning: {path} is readable by other users (chmod 600 it)", file=sys.stderr)
    return lines[0].strip()


def main(argv: list[str] | None = None) -> None:
    """`python -m mbmrl.runtime.serve ARTIFACT ...`: the same as `mbmrl serve`, for devices and child processes."""
    parser = argparse.ArgumentParser(prog="mbmrl serve", description=__doc__)
    parser.add_argument("artifact", help="artifact directory")
    add_dataclass_args(parser, ServeConfig, skip=("artifact",))
    try:
        serve(dataclass_from_args(ServeConfig, parser.parse_args(argv)))
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"mbmrl serve: error: {e}\n")
    except KeyboardInterrupt:
        parser.exit(130)


if __name__ == "__main__":
    main()
