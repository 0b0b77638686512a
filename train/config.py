"""`mbmrl train` configuration: one frozen dataclass, every field a CLI flag."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from mbmrl.runtime.artifact import MODES
from mbmrl.runtime.planner import PlannerConfig, parse_planner

# random-action episodes of the first round (`random_actions` in train/data.py)
RANDOM_POLICIES = ("mixed", "uniform")
FEATURE_ACTIVATIONS = ("tanh", "linear")  # `--feature-activation`; `ModelArgs.feature_activation` checks the same


def _h(text: str):
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """Meta-training of a recurrent dynamics model across a task family."""

    family: str = field(default="pendulum", metadata=_h("task family name or package.module:function"))
    out: str = field(default="runs/pendulum", metadata=_h("run directory for checkpoint, data, config, plots"))
    seed: int = field(default=0, metadata=_h("seed for data collection, initialization and batches"))
    device: str = field(default="auto", metadata=_h("auto | cpu | cuda"))
    threads: int = field(default=1, metadata=_h("torch CPU threads (0 = torch default; 1 is fastest for small models)"))
    # data
    n_tasks: int = field(default=120, metadata=_h("training tasks sampled from the family's train space"))
    episodes_per_task: int = field(default=2, metadata=_h("random-action episodes collected per task"))
    random_policy: str = field(default="mixed", metadata=_h(
        "random-action episodes: 'mixed' (half i.i.d. uniform, half a smooth random walk) or 'uniform' (all "
        "i.i.d., as CaDM's and PETS's random round)"))
    seq_len: int = field(default=64, metadata=_h("segment length L: context and targets come from one segment"))
    collect_envs: int = field(default=1, metadata=_h(
        "parallel Gymnasium envs for data collection (1 = sequential): a vector env for the random data, "
        "tasks flown at once on threads in the MPC rounds"))
    val_frac: float = field(default=0.1, metadata=_h("fraction of training tasks held out for validation"))
    mpc_rounds: int = field(default=0, metadata=_h(
        "model-based exploration rounds after the random data: MPC with the model collects on-policy data "
        "on new training tasks, then training continues on everything (0 = random data only)"))
    mpc_tasks: int = field(default=40, metadata=_h("new training tasks flown per exploration round"))
    mpc_iters: int = field(default=1000, metadata=_h("training iterations after each exploration round"))
    mpc_lr: float = field(default=0.0, metadata=_h(
        "peak learning rate of each exploration round's fit (0 = --lr): every round starts a fresh Adam and "
        "cosine schedule, and a fresh Adam's first steps move every weight by about the learning rate"))
    keep_optimizer: bool = field(default=False, metadata=_h(
        "carry Adam's moment estimates from fit to fit across the exploration rounds (CaDM trains one optimizer "
        "throughout); each round still restarts the cosine schedule at its peak learning rate"))
    keep_rounds: bool = field(default=False, metadata=_h(
        "also save the model after every exploration round's fit as RUN/rounds/roundNN.pt (checkpoints "
        "`mbmrl export` takes), to evaluate the run's models along its learning curve"))
    mpc_noise: float = field(default=0.1, metadata=_h("exploration noise on MPC actions (fraction of half-range)"))
    mpc_mode: str = field(default="recurrent", metadata=_h(
        "the adaptation mode the exploring sessions fly: recurrent | none | gradient | bayes"))
    mpc_noise_corr: float = field(default=0.0, metadata=_h(
        "correlation in [0, 1) of the exploration noise from one step to the next (an AR(1) process of the same "
        "spread; 0 = white noise): held pushes reach states the plans alone never visit"))
    renormalize: bool = field(default=False, metadata=_h(
        "recompute the normalization statistics from all data after each exploration round (CaDM does): "
        "on-policy states far outside the random data's range otherwise saturate the encoder's soft clip"))
    mpc_member: int = field(default=-1, metadata=_h(
        "with --ensemble K: the exploring sessions plan with this member alone (0..K-1; 1/K of the collection "
        "compute), or -1 with every member (trajectory sampling, as the exported artifact plans)"))
    mpc_thompson: bool = field(default=False, metadata=_h(
        "with --ensemble K: exploring task i of each round plans with member i mod K alone (Thompson sampling: "
        "each member is corrected on the states its own plans reach, at 1/K of the whole ensemble's compute)"))
    mpc_engine: str = field(default="torch", metadata=_h(
        "engine the exploring sessions plan on: 'torch' (the model in training) or 'onnx' (the model exported "
        "each round, verified against torch: about 3x faster planning on CPU)"))
    protocol: str = field(default="", metadata=_h(
        "a published schedule filling the data and exploration fields left at their defaults: 'cadm' = CaDM's "
        "20 iterations x 10 episodes (random, then MPC-collected on new tasks): 200k steps on MuJoCo"))
    # model
    hidden_size: int = field(default=64, metadata=_h("GRU belief size"))
    feature_dim: int = field(default=32, metadata=_h("feature size D (head is D x (obs_dim+1))"))
    mlp_width: int = field(default=128, metadata=_h("width of the feature MLP (96 in the edge profile: docs/edge.md)"))
    mlp_depth: int = field(default=2, metadata=_h("hidden layers of the feature MLP (CaDM's and PETS's MLPs: 4)"))
    feature_activation: str = field(default="tanh", metadata=_h(
        "activation of the features phi: 'tanh' (bounded) or 'linear' (phi @ W is a plain MLP's output layer, as in "
        "PETS and CaDM: predictions extrapolate past the data instead of saturating)"))
    ensemble: int = field(default=1, metadata=_h(
        "K feature MLPs sharing the belief encoder and the head; the planner rolls every candidate through each "
        "(trajectory sampling, K x the rollout compute) and averages the costs"))
    member_heads: bool = field(default=False, metadata=_h(
        "with --ensemble K: each member owns (feature_dim - 1) / K of the features and so its own rows of the head "
        "(PETS's independent members; only the encoder and the bias row stay shared), e.g. --ensemble 3 "
        "--feature-dim 190 gives each member a 63-feature head"))
    bootstrap: bool = field(default=False, metadata=_h(
        "with --ensemble K: each member fits its own bootstrap resample of the training segments, redrawn every "
        "round (PETS's and CaDM's members), as per-segment weights on its losses; the encoder and the shared head "
        "see every member's"))
    planner: str = field(default="", metadata=_h(
        "planner defaults the artifact ships, over the family's, e.g. 'samples=128' (the edge profile)"))
    cost: str = field(default="", metadata=_h(
        "planning-cost overrides over the family's, as a JSON object (as `mbmrl eval --cost`): the exploring "
        "sessions plan with it and the artifact ships it, e.g. a half-cheetah's upright term "
        "'{\"q\": [0, 1, 0, ...]}' (17 entries)"))
    # optimization
    iters: int = field(default=2500, metadata=_h("meta-training iterations"))
    batch_size: int = field(default=64, metadata=_h("segments (tasks) per batch, split evenly across torchrun ranks"))
    lr: float = field(default=2e-3, metadata=_h("Adam learning rate (cosine decay)"))
    weight_decay: float = field(default=0.0, metadata=_h(
        "decoupled weight decay (AdamW) on the encoder's and feature MLPs' weight matrices (not on the head, "
        "its prior or the biases); CaDM regularizes its MLPs with L2 (0 = off)"))
    none_weight: float = field(default=0.5, metadata=_h("weight of the context-free (h0) loss"))
    recurrent_weight: float = field(default=1.0, metadata=_h(
        "weight of the recurrent (h_t) one-step loss and of the belief h_t in the multi-step loss; 0 with "
        "--mpc-mode none and no gradient/bayes loss trains a context-free model, CaDM's vanilla DM"))
    gaussian_nll: bool = field(default=False, metadata=_h("Gaussian head: predict a log-variance, train by NLL"))
    rollout_steps: int = field(default=1, metadata=_h("K for the open-loop multi-step loss (1 = off)"))
    multistep_weight: float = field(default=0.5, metadata=_h("weight of the multi-step loss"))
    objective_weight: float = field(default=0.0, metadata=_h(
        "extra weight on the one-step error of the outputs the planning cost reads (the family cost's reward "
        "linear term and q; the reward output when it is learned): 0 = every output alike"))
    gradient_weight: float = field(default=0.5, metadata=_h("weight of the gradient-mode loss (0 = off)"))
    gradient_steps: int = field(default=2, metadata=_h("inner gradient steps k on the head"))
    bayes_weight: float = field(default=0.1, metadata=_h("weight of the Bayesian-head NLL (0 = off)"))
    noise_prior: float = field(default=3.0, metadata=_h(
        "bayes: prior weight a0 of the online noise-scale estimate (Student-t predictive); 0 = noise known"))
    window: int = field(default=32, metadata=_h("context window M for gradient/bayes adaptation"))
    oracle: bool = field(default=True, metadata=_h("also train the oracle model (true parameters as input)"))
    resume: bool = field(default=False, metadata=_h(
        "continue the run in --out after its last finished exploration round (RUN/resume.pt, written after each "
        "round); a fresh start when there is none"))
    init: str = field(default="", metadata=_h(
        "fine-tune: start from this run's model.pt and data.npz instead of collecting and training from scratch"))
    data: str = field(default="", metadata=_h(
        "with --init: add recorded sessions (MCAP files or directories from `mbmrl serve --record`, comma-separated)"
        " as training tasks of unknown parameters (the oracle is not trained then)"))
    data_repeat: int = field(default=10, metadata=_h("with --data: each recorded segment counts this many times"))
    amp: bool = field(default=True, metadata=_h("bfloat16 autocast for forward and losses (CUDA only)"))
    log_every: int = field(default=100, metadata=_h("iterations between logged losses and validation errors"))
    tensorboard: bool = field(default=True, metadata=_h("write TensorBoard scalars to RUN/tb"))
    progress: bool = field(default=True, metadata=_h("show progress bars"))

    def __post_init__(self):
        PlannerConfig().replace(**parse_planner(self.planner))  # a clear error now, not after training
        if self.cost:
            cost_overrides(self.cost)  # a JSON object (its dimensions are checked against the family in `train`)
        if self.protocol not in PROTOCOLS and self.protocol != "":
            raise ValueError(f"--protocol must be one of {sorted(PROTOCOLS)} (or empty), got {self.protocol!r}")
        if self.mpc_lr < 0:
            raise ValueError(f"--mpc-lr must be >= 0 (0 = the same as --lr), got {self.mpc_lr}")
        if not 0.0 <= self.weight_decay < 1.0:
            raise ValueError(f"--weight-decay must be in [0, 1), got {self.weight_decay}")
        if self.ensemble < 1:
            raise ValueError(f"--ensemble must be >= 1 members, got {self.ensemble}")
        if not -1 <= self.mpc_member < self.ensemble:
            raise ValueError(f"--mpc-member must be -1 (every member) or a member in [0, {self.ensemble}) of "
                             f"--ensemble {self.ensemble}, got {self.mpc_member}")
        if self.mpc_thompson and (self.ensemble < 2 or self.mpc_member != -1):
            raise ValueError("--mpc-thompson needs --ensemble K >= 2 and no --mpc-member (it picks each task's member "
                             f"itself), got --ensemble {self.ensemble} --mpc-member {self.mpc_member}")
        if self.bootstrap and self.ensemble < 2:
            raise ValueError(f"--bootstrap resamples the data for each member of an ensemble: it needs --ensemble K "
                             f">= 2, got --ensemble {self.ensemble}")
        if self.member_heads and (self.ensemble < 2 or (self.feature_dim - 1) % self.ensemble):
            raise ValueError(f"--member-heads needs --ensemble K >= 2 and --feature-dim D with D - 1 divisible by K "
                             f"(each member owns (D - 1) / K features), got --ensemble {self.ensemble} "
                             f"--feature-dim {self.feature_dim}")
        if self.mlp_depth < 2:
            raise ValueError(f"--mlp-depth must be >= 2 hidden layers, got {self.mlp_depth}")
        if self.feature_activation not in FEATURE_ACTIVATIONS:
            raise ValueError(f"--feature-activation must be one of {FEATURE_ACTIVATIONS}, "
                             f"got {self.feature_activation!r}")
        if self.random_policy not in RANDOM_POLICIES:
            raise ValueError(f"--random-policy must be one of {RANDOM_POLICIES}, got {self.random_policy!r}")
        if self.mpc_mode not in MODES or self.mpc_mode == "oracle":  # an oracle needs the task's true parameters
            raise ValueError(f"--mpc-mode must be one of {[m for m in MODES if m != 'oracle']}, got {self.mpc_mode!r}")
        if self.recurrent_weight < 0:
            raise ValueError(f"--recurrent-weight must be >= 0, got {self.recurrent_weight}")
        if self.recurrent_weight == 0 and self.mpc_mode == "recurrent" and self.mpc_rounds > 0:
            raise ValueError("--recurrent-weight 0 leaves the belief h_t untrained, so the exploring sessions cannot "
                             "fly mode recurrent: pass --mpc-mode none (or gradient, bayes)")
        if not 0.0 <= self.mpc_noise_corr < 1.0:
            raise ValueError(f"--mpc-noise-corr must be in [0, 1), got {self.mpc_noise_corr}")
        if self.mpc_engine not in ("torch", "onnx"):
            raise ValueError(f"--mpc-engine must be 'torch' or 'onnx', got {self.mpc_engine!r}")
        if self.data and not self.init:
            raise ValueError("--data adds recordings to a trained run: pass --init RUN too (the run to fine-tune)")
        if not (self.noise_prior == 0 or self.noise_prior > 1):
            raise ValueError(f"--noise-prior must be 0 (known noise) or > 1 (finite predictive variance), "
                             f"got {self.noise_prior}")


# CaDM (Lee et al., ICML 2020, `run_scripts/run_cadm_pets.py`): 20 iterations x 10 rollouts, the first random,
# each later one flown by MPC with the model in training (here: 10 new training tasks per round, one episode
# each), the model trained after every iteration. Episodes are the family's (1000 steps on MuJoCo: 200k steps).
# Training per round is ours (`mpc_iters`), not CaDM's 5 epochs of 256-transition batches.
PROTOCOLS: dict[str, dict] = {
    "cadm": {"n_tasks": 10, "episodes_per_task": 1, "mpc_rounds": 19, "mpc_tasks": 10, "iters": 1000,
             "mpc_iters": 300, "mpc_engine": "onnx"},
}


def with_protocol(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its protocol's settings in every field still at its default (flags given stay as given)."""
    if not cfg.protocol:
        return cfg
    defaults = TrainConfig()
    preset = {k: v for k, v in PROTOCOLS[cfg.protocol].items() if getattr(cfg, k) == getattr(defaults, k)}
    return replace(cfg, **preset)


def load_run_config(run: str | Path, drop: tuple[str, ...] = ()) -> TrainConfig:
    """The config a run directory was trained with (its config.json), less the `drop` fields; keys this version
    does not know (a refit's `refit_of`, an older run's removed flags) are ignored."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no config.json; pass a run directory written by `mbmrl train`")
    known = {f.name for f in fields(TrainConfig)} - set(drop)
    return TrainConfig(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})


def cost_overrides(text: str) -> dict:
    """`--cost`'s JSON object (empty: none), or a clear error."""
    if not text:
        return {}
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--cost must be a JSON object of cost fields, e.g. '{{\"q\": [...]}}': {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"--cost must be a JSON object of cost fields, got {text!r}")
    return d
