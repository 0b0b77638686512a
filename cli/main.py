"""The `mbmrl` console script. Each subcommand imports only what it needs (serve never imports torch)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .args import add_dataclass_args, dataclass_from_args


def _train(ns: argparse.Namespace) -> None:
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.trainer import train

    out = train(dataclass_from_args(TrainConfig, ns))
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 wrote the run
        return
    files = ", ".join(f for f in ("model.pt", "oracle.pt", "metrics.json", "train_curve.png", "config.json")
                      if (Path(out) / f).exists())
    print(f"run written to {out} ({files})")


def _export(ns: argparse.Namespace) -> None:
    from mbmrl.export.onnx_export import ExportConfig, export_run

    out = export_run(dataclass_from_args(ExportConfig, ns))
    print(f"artifact written to {out}")


def _serve(ns: argparse.Namespace) -> None:
    from mbmrl.runtime.serve import ServeConfig, serve

    serve(dataclass_from_args(ServeConfig, ns))


def _eval(ns: argparse.Namespace) -> None:
    from mbmrl.evaluation import EvalConfig, run_eval

    run_eval(dataclass_from_args(EvalConfig, ns))


def _bench(ns: argparse.Namespace) -> None:
    from mbmrl.bench import BenchConfig, run_bench

    run_bench(dataclass_from_args(BenchConfig, ns))


def _quickstart(ns: argparse.Namespace) -> None:
    from mbmrl.quickstart import QuickstartConfig, quickstart

    quickstart(dataclass_from_args(QuickstartConfig, ns))


def build_parser():
    """The parser, its subparsers, and `add(...)` registering one subcommand from its config dataclass.

    Config dataclasses are imported only for the subcommand being run (see `main`).
    """
    parser = argparse.ArgumentParser(prog="mbmrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str, fn, cfg_module: str, cfg_name: str, positional: str | None = None):
        import importlib

        p = sub.add_parser(name, help=help_text, description=help_text)
        cls = getattr(importlib.import_module(cfg_module), cfg_name)
        if positional:
            p.add_argument(positional, help=f"{positional} directory")
        add_dataclass_args(p, cls, skip=(positional,) if positional else ())
        p.set_defaults(fn=fn)

    return parser, sub, add


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mbmrl` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser, sub, add = build_parser()
    command = next((a for a in argv if not a.startswith("-")), None)
    # register only the subcommand being run, so its config import cannot drag in another's dependencies
    table = {
        "train": ("meta-train a dynamics model on a task family", _train, "mbmrl.train.config", "TrainConfig", None),
        "export": ("export a run to a verified ONNX artifact", _export, "mbmrl.export.onnx_export",
                   "ExportConfig", "run"),
        "serve": ("serve an artifact over local HTTP (no torch needed)", _serve, "mbmrl.runtime.serve",
                  "ServeConfig", "artifact"),
        "eval": ("evaluate an artifact on a family's test tasks", _eval, "mbmrl.evaluation", "EvalConfig",
                 "artifact"),
        "bench": ("latency of the runtime vs PyTorch eager", _bench, "mbmrl.bench", "BenchConfig", "artifact"),
        "quickstart": ("train, export, serve and control pendulums in minutes on a CPU", _quickstart,
                       "mbmrl.quickstart", "QuickstartConfig", None),
    }
    for name, (help_text, fn, mod, cls, pos) in table.items():
        if name == command:
            add(name, help_text, fn, mod, cls, pos)
        else:
            sub.add_parser(name, help=help_text)
    ns = parser.parse_args(argv)
    try:
        ns.fn(ns)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError) as e:
        print(f"mbmrl {ns.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
