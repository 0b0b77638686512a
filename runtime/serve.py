"""`mbmrl serve ARTIFACT`: run the HTTP API (`mbmrl.runtime.server`) under uvicorn. No torch needed."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from .flags import add_dataclass_args, dataclass_from_args


@dataclass(frozen=True)
class ServeConfig:
    """Settings of `mbmrl serve` (one flag per field)."""

    artifact: str = field(metadata={"help": "artifact directory written by `mbmrl export`"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface to bind; loopback by default"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    token: str = field(default="", metadata={
        "help": "require 'Authorization: Bearer TOKEN' on every route but /healthz; empty: read the "
                "MBMRL_TOKEN environment variable, and if that is unset too, no token"})
    state_dir: str = field(default="", metadata={
        "help": "persist every session here after each change and restore them on start; empty: memory only"})
    threads: int = field(default=1, metadata={"help": "ONNX Runtime intra-op threads per graph"})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "larger request bodies get 413"})
    max_sessions: int = field(default=1024, metadata={"help": "more concurrent sessions get 429"})
    log_level: str = field(default="warning", metadata={
        "help": "uvicorn log level (debug, info, warning, error)"})


def serve(cfg: ServeConfig) -> None:
    """Load the artifact and serve it until interrupted; prints the URL once."""
    import uvicorn

    from .server import create_app

    token = cfg.token or os.environ.get("MBMRL_TOKEN", "")
    app = create_app(cfg.artifact, token=token or None, state_dir=cfg.state_dir or None, threads=cfg.threads,
                     max_body_bytes=cfg.max_body_bytes, max_sessions=cfg.max_sessions)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    auth = ", bearer token required" if token else ""
    print(f"mbmrl serve: http://{host}:{cfg.port} (API docs at /docs{auth})", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, timeout_keep_alive=30)


def main(argv: list[str] | None = None) -> None:
    """`python -m mbmrl.runtime.serve ARTIFACT ...`: the same as `mbmrl serve`, for devices and child processes."""
    parser = argparse.ArgumentParser(prog="mbmrl serve", description=__doc__)
    parser.add_argument("artifact", help="artifact directory")
    add_dataclass_args(parser, ServeConfig, skip=("artifact",))
    serve(dataclass_from_args(ServeConfig, parser.parse_args(argv)))


if __name__ == "__main__":
    main()
