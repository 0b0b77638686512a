"""Configs of the subcommands that join training and the runtime (`export`, `bench`, `quickstart`).

Plain dataclasses, importable without torch, so the console script registers every subcommand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExportConfig:
    """Export settings."""

    run: str = field(default="runs/pendulum", metadata={"help": "run directory written by `mbmrl train`"})
    out: str = field(default="artifact", metadata={"help": "artifact directory to write"})
    horizons: tuple[int, ...] = field(default=(15, 30), metadata={"help": "planning horizons to export"})
    tolerance: float = field(default=1e-4, metadata={"help": "max abs torch-vs-ORT error allowed"})


@dataclass(frozen=True)
class BenchConfig:
    """Latency benchmark settings."""

    artifact: str = field(default="artifact", metadata={"help": "artifact directory"})
    threads: int = field(default=1, metadata={"help": "intra-op threads for both engines"})
    repeats: int = field(default=200, metadata={"help": "timed runs per measurement (median reported)"})
    json: str = field(default="", metadata={"help": "also write the results to this JSON file"})
    torch: bool = field(default=True, metadata={"help": "include the PyTorch eager column (needs torch)"})


@dataclass(frozen=True)
class QuickstartConfig:
    """Budget of the quickstart (defaults take about 7 minutes on 2 CPU cores)."""

    out: str = field(default="quickstart", metadata={"help": "output directory"})
    iters: int = field(default=2500, metadata={"help": "meta-training iterations"})
    n_tasks: int = field(default=150, metadata={"help": "training tasks"})
    episodes_per_task: int = field(default=3, metadata={"help": "random episodes per training task"})
    control_seeds: int = field(default=2, metadata={"help": "MPC episodes per test task and mode"})
    windows: int = field(default=8, metadata={"help": "context windows per test task for the prediction error"})
    episode_steps: int = field(default=200, metadata={"help": "MPC episode length"})
    max_tasks: int = field(default=0, metadata={"help": "evaluate only the first N test tasks per split (0 = all)"})
    seed: int = field(default=0, metadata={"help": "seed"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
