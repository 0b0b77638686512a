"""The `mbmrl` console script: one subcommand per entry point, each with its config dataclass as flags.

Every config is a plain dataclass importable without torch, so all subcommands are registered up
front; a subcommand imports its implementation (and torch, where it needs it) only when it runs.
`mbmrl serve` therefore works on a device that has only `mbmrl[serve]`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from mbmrl.runtime.flags import add_dataclass_args, dataclass_from_args
from mbmrl.runtime.serve import ServeConfig
from mbmrl.train.config import TrainConfig
from mbmrl.train.evaluation.protocol import EvalConfig
from mbmrl.train.replay import ReplayConfig

from .config import BenchConfig, ExportConfig, QuickstartConfig

# name -> (help, config dataclass, positional field, "module:function" that runs it)
COMMANDS: dict[str, tuple[str, type, str | None, str]] = {
    "train": ("meta-train a dynamics model on a task family", TrainConfig, None, "mbmrl.train.trainer:train"),
    "export": ("export a run to a verified ONNX artifact", ExportConfig, "run", "mbmrl.export.onnx_export:export_run"),
    "serve": ("serve an artifact over local HTTP (no torch needed)", ServeConfig, "artifact",
              "mbmrl.runtime.serve:serve"),
    "eval": ("evaluate an artifact on a family's test tasks", EvalConfig, "artifact",
             "mbmrl.train.evaluation.command:run_eval"),
    "replay": ("re-run recorded sessions (mbmrl serve --record) through an artifact: errors over time",
               ReplayConfig, "recordings", "mbmrl.train.replay:replay"),
    "bench": ("latency of act, observe and step (in process, HTTP, stream) vs PyTorch and pytorch_mppi",
              BenchConfig, "artifact", "mbmrl.export.bench:run_bench"),
    "quickstart": ("train, export, serve and control pendulums in minutes on a CPU", QuickstartConfig, None,
                   "mbmrl.export.quickstart:quickstart"),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand's flags."""
    parser = argparse.ArgumentParser(prog="mbmrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, cls, positional, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if positional:
            p.add_argument(positional, help=f"{positional} directory")
        add_dataclass_args(p, cls, skip=(positional,) if positional else ())
    return parser


def _report(command: str, result: object) -> None:
    """One line saying where the outputs went (train and export)."""
    if command == "train" and os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 wrote the run
        files = ", ".join(f for f in ("model.pt", "oracle.pt", "metrics.json", "train_curve.png", "config.json")
                          if (Path(str(result)) / f).exists())
        print(f"run written to {result} ({files})")
    elif command == "export":
        print(f"artifact written to {result}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mbmrl` console script."""
    ns = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    _, cls, _, target = COMMANDS[ns.command]
    module, function = target.split(":")
    try:
        run = getattr(importlib.import_module(module), function)
        _report(ns.command, run(dataclass_from_args(cls, ns)))
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as e:
        print(f"mbmrl {ns.command}: error: {e}; install the extra it needs, e.g. pip install 'mbmrl[all]'",
              file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"mbmrl {ns.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
