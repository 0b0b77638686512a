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
    int8: str = field(default="", metadata={"help": "also export int8 rollout graphs with these layers quantized: "
                                                    "'f2' (the width x width layer), 'f2,fmid' (every width x "
                                                    "width layer of an --mlp-depth > 2 model), 'f2,f3' or 'all'"})
    int8_budget: float = field(default=0.05, metadata={
        "help": "largest median int8 error allowed: cost error / cost spread, and action error / action range"})
    member: int = field(default=-1, metadata={
        "help": "of an --ensemble K run: export member k alone (0..K-1; a plain artifact, 1/K of the rollout "
                "compute), or -1 for the whole ensemble"})

    def __post_init__(self) -> None:
        if self.member < -1:
            raise ValueError(f"--member must be a member index 0..K-1, or -1 for the whole ensemble; got "
                             f"{self.member}")


@dataclass(frozen=True)
class BenchConfig:
    """Latency benchmark settings."""

    artifact: str = field(default="artifact", metadata={"help": "artifact directory"})
    threads: int = field(default=1, metadata={"help": "intra-op threads for every engine"})
    repeats: int = field(default=300, metadata={"help": "timed runs per measurement (p50 and p99 reported)"})
    samples: int = field(default=0, metadata={"help": "planner samples N (0 = the artifact's default)"})
    horizon: int = field(default=0, metadata={"help": "planner horizon H (0 = the artifact's default)"})
    json: str = field(default="", metadata={"help": "also write the results (stable keys) to this JSON file"})
    precision: str = field(default="fp32", metadata={"help": "rollout graphs to time: 'fp32' or 'int8'"})
    torch: bool = field(default=True, metadata={"help": "include the PyTorch and pytorch_mppi columns"})
    compile: bool = field(default=True, metadata={"help": "include the torch.compile column (compiles first)"})
    transport: bool = field(default=True, metadata={"help": "time step over HTTP and the stream (starts a server)"})


@dataclass(frozen=True)
class QuickstartConfig:
    """Budget of the quickstart (defaults take about 4 minutes on 2 CPU cores) and its model: the edge profile
    (docs/edge.md), sized to plan at 50 Hz on one Raspberry Pi 4 core."""

    out: str = field(default="quickstart", metadata={"help": "output directory"})
    iters: int = field(default=2500, metadata={"help": "meta-training iterations"})
    n_tasks: int = field(default=150, metadata={"help": "training tasks"})
    episodes_per_task: int = field(default=3, metadata={"help": "random episodes per training task"})
    mlp_width: int = field(default=96, metadata={"help": "width of the feature MLP (edge profile: 96)"})
    samples: int = field(default=128, metadata={"help": "planner samples N the artifact ships (edge profile: 128)"})
    control_seeds: int = field(default=2, metadata={"help": "MPC episodes per test task and mode"})
    windows: int = field(default=8, metadata={"help": "context windows per test task for the prediction error"})
    episode_steps: int = field(default=200, metadata={"help": "MPC episode length"})
    max_tasks: int = field(default=0, metadata={"help": "evaluate only the first N test tasks per split (0 = all)"})
    seed: int = field(default=0, metadata={"help": "seed"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
