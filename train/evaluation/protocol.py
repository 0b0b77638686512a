"""What an evaluation measures (`EvalProtocol`) and the `mbmrl eval` flags (`EvalConfig`). No heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field

CONTEXTS = "0,1,2,4,8,16,32,50"


def parse_contexts(text: str) -> tuple[int, ...]:
    """'0,1,2,4' -> (0, 1, 2, 4), sorted and unique; a clear error for anything else."""
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"--contexts must be comma-separated integers like {CONTEXTS!r}, got {text!r}") from None
    if not values or values[0] < 0:
        raise ValueError(f"--contexts must be non-negative integers, got {text!r}")
    return tuple(values)


@dataclass(frozen=True)
class EvalProtocol:
    """The protocol: which errors after how much context, how many control episodes, which data."""

    contexts: tuple[int, ...] = parse_contexts(CONTEXTS)
    """Context sizes m of the adaptation curve."""
    horizon: int = 15
    """H of the open-loop H-step prediction error."""
    windows: int = 8
    """Target windows per task for the prediction errors."""
    streams: int = 2
    """Transition streams collected per task as prediction ground truth."""
    seeds: int = 2
    """MPC episodes per task and mode (different start states); 0 = no control."""
    episode_steps: int = 0
    """MPC episode length (0 = the family's)."""
    prediction_data: str = "random"
    """'random' actions, or 'mpc': flown by the none-mode controller, the same transitions for every mode."""
    seed: int = 0
    """Seed of the planners and episode starts."""
    data_seed: int = 0
    """Task i's prediction data comes from seed data_seed + i."""

    def __post_init__(self):
        if self.prediction_data not in ("random", "mpc"):
            raise ValueError(f"--prediction-data must be 'random' or 'mpc', got {self.prediction_data!r}")


@dataclass(frozen=True)
class EvalConfig:
    """`mbmrl eval`: evaluation of an artifact on held-out (test-range) tasks."""

    artifact: str = field(default="artifact", metadata={"help": "artifact directory from `mbmrl export`"})
    family: str = field(default="", metadata={"help": "task family (default: the artifact's own)"})
    split: str = field(default="test", metadata={
        "help": "'test' (all test splits), one split name or several, comma-separated"})
    out: str = field(default="eval", metadata={"help": "output directory for eval.json and plots"})
    modes: str = field(default="none,recurrent,gradient,bayes,oracle", metadata={"help": "modes to evaluate"})
    contexts: str = field(default=CONTEXTS, metadata={"help": "context sizes m for the adaptation curve"})
    prediction_data: str = field(default="random", metadata={
        "help": "transitions for the prediction errors: 'random' actions, or 'mpc' = flown by the non-adaptive "
                "(none-mode) MPC controller from the evaluation start, the same transitions for every mode"})
    horizon: int = field(default=15, metadata={"help": "H for the open-loop H-step prediction error"})
    windows: int = field(default=8, metadata={"help": "context windows per task for the prediction error"})
    seeds: int = field(default=2, metadata={"help": "MPC episodes per task (different start states)"})
    episode_steps: int = field(default=0, metadata={"help": "MPC episode length (0 = the family's)"})
    control: bool = field(default=True, metadata={"help": "run MPC episodes"})
    max_tasks: int = field(default=0, metadata={"help": "evaluate only the first N tasks of each split (0 = all)"})
    planner: str = field(default="", metadata={"help": "planner overrides for every session, e.g. "
                                                         "'samples=128,noise_beta=2' (default: the artifact's)"})
    cost: str = field(default="", metadata={"help": "cost overrides for every session, as a JSON object of cost "
                                                    "fields, e.g. '{\"r\": [0, 0.001, 0.001, 0.001]}' (default: "
                                                    "the artifact's)"})
    window: int = field(default=0, metadata={"help": "gradient and bayes sessions adapt on this many last transitions "
                                                     "(0: the artifact's; other modes have no window)"})
    precision: str = field(default="fp32", metadata={
        "help": "rollout graphs to plan with: 'fp32', 'int8' (an artifact exported with --int8), or 'fp32,int8' "
                "for both side by side (int8 modes are reported as MODE@int8)"})
    guard: str = field(default="on", metadata={
        "help": "the adaptation guard of adaptive sessions: 'on' (the artifact's default_guard), 'off', 'both' "
                "(each adaptive mode also unguarded, reported as MODE@unguarded), or a JSON object of guard "
                "settings changing the artifact's, e.g. '{\"horizon\": 15}'"})
    gain: str = field(default="default", metadata={
        "help": "actuator-gain adaptation of every session: 'default' (the artifact's default_gain; off when it has "
                "none), 'on', 'off', 'both' (every mode without it and again with it, reported as MODE+gain), or a "
                "JSON object of gain settings, e.g. '{\"max_gain\": 2.0}'"})
    threads: int = field(default=1, metadata={"help": "ONNX Runtime intra-op threads"})
    workers: int = field(default=1, metadata={"help": "tasks evaluated in parallel (threads; e.g. 2 on 2 cores)"})
    seed: int = field(default=0, metadata={"help": "seed for evaluation data and planners"})
    markdown: bool = field(default=False, metadata={"help": "also write results.md (README-ready tables)"})
    control_tasks: str = field(default="", metadata={
        "help": "tracking evaluation instead of the adaptation curves: fly these named control tasks of the family "
                "(e.g. 'figure8') with every mode and the family's baselines over --winds; writes tracking.json, "
                "tracking.md, tracking.png"})
    winds: str = field(default="0,4.2,8.5,8.5+2.4sin,12.1", metadata={
        "help": "tracking: wind speeds along x (m/s); 'S+Gsin' gusts S + G sin(t)"})
    baselines: str = field(default="all", metadata={"help": "tracking: the family's classical baselines to fly "
                                                             "('all', 'none' or names, e.g. 'pid,pd')"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def protocol(self, family_steps: int) -> EvalProtocol:
        """The protocol these flags describe, for a family with `family_steps`-step episodes."""
        contexts = tuple(m for m in parse_contexts(self.contexts) if m + self.horizon < family_steps)
        return EvalProtocol(contexts=contexts, horizon=self.horizon, windows=self.windows,
                            seeds=self.seeds if self.control else 0, episode_steps=self.episode_steps,
                            prediction_data=self.prediction_data, seed=self.seed, data_seed=self.seed * 7919)
