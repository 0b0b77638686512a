"""int8 rollout graphs with a measured error budget (`mbmrl export RUN --int8 f2`).

The rollout's time goes to the feature MLP's hidden layers, applied once per step to every sample; their
weights are constants shared by all steps. Quantizing chosen layers (ONNX Runtime dynamic quantization:
int8 weights per output channel, activations quantized per call) speeds the graph up; what it costs in
planning quality is measured here, on real states and beliefs, and stored in the manifest:

- cost error: |cost_int8 - cost_fp32| of N random action sequences, relative to the spread (std) of the fp32
  costs over those sequences (what MPPI's weights see);
- action error: |a_int8 - a_fp32| of the planned first action (same planner, same noise), as a fraction of
  the action range.

The export fails when the median of either exceeds the budget, so a quantized artifact always states, and
keeps, what it was measured to do.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import onnx
from mbmrl.runtime.dynamics import CostTerms
from mbmrl.runtime.model import Runtime
from mbmrl.runtime.planner import plan
from onnx import helper, numpy_helper

LAYERS = ("f2", "fmid", "f3")  # the feature MLP's width x width layers (f2, and fmid.i with --mlp-depth > 2) and its
# output layer: `model[.members.k].<layer>[.i].weight`


class QuantizationError(ValueError):
    """The int8 graphs miss their error budget, or the layers asked for do not exist."""


def parse_layers(text: str) -> tuple[str, ...]:
    """'f2' / 'f2,f3' / 'fmid' / 'all' -> layer names; a clear error for anything else."""
    layers = LAYERS if text.strip() == "all" else tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in layers if x not in LAYERS]
    if bad or not layers:
        raise QuantizationError(f"--int8 takes layers from {list(LAYERS)} (comma-separated) or 'all', got {text!r}")
    return layers


def quantize_graph(src: Path, dst: Path, layers: tuple[str, ...]) -> int:
    """Write `dst`: `src` with the Gemms of `layers` as int8 MatMuls (per-channel weights); returns how many.

    ORT's dynamic quantizer takes MatMul, not Gemm, so each chosen Gemm (x W^T + b) first becomes
    MatMul(x, W^T) + b, all steps sharing one transposed initializer.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, targets, added = [], [], set()
    for n in g.node:
        weight = n.input[1] if len(n.input) > 1 else ""
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        parts = weight.split(".")
        member_layer = parts[0] == "model" and parts[-1] == "weight" and any(x in parts for x in layers)
        if n.op_type == "Gemm" and member_layer and attrs.get("transB") == 1 \
                and not attrs.get("transA") and attrs.get("alpha", 1.0) == attrs.get("beta", 1.0) == 1.0:
            wt = weight + ".T"
            if wt not in added:
                g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[weight]).T.copy(), wt))
                added.add(wt)
            nodes.append(helper.make_node("MatMul", [n.input[0], wt], [n.output[0] + ".mm"], name=n.name + ".mm"))
            nodes.append(helper.make_node("Add", [n.output[0] + ".mm", n.input[2]], list(n.output), name=n.name + ".b"))
            targets.append(n.name + ".mm")
        else:
            nodes.append(n)
    if not targets:
        raise QuantizationError(f"{src.name} has no layer {list(layers)} to quantize")
    del g.node[:]
    g.node.extend(nodes)
    staged = dst.with_suffix(".fp32mm.onnx")
    onnx.save(model, str(staged))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process concerns image models, not this graph
    try:
        quantize_dynamic(str(staged), str(dst), nodes_to_quantize=targets, weight_type=QuantType.QInt8,
                         per_channel=True)
    finally:
        root.setLevel(level)
        staged.unlink(missing_ok=True)
    onnx.checker.check_model(str(dst))
    return len(targets)


def measure_error(fp32: Runtime, int8: Runtime, obs: np.ndarray, h: np.ndarray, samples: int = 0,
                  seed: int = 0) -> dict:
    """Cost and action error of `int8`'s rollouts against `fp32`'s over contexts obs (K, O), h (K, hidden),
    planning with the artifact's default planner (`samples` > 0 overrides its N)."""
    rng = np.random.default_rng(seed)
    planner = fp32.default_planner.replace(samples=samples or fp32.default_planner.samples)
    samples = planner.samples
    horizon = planner.horizon
    terms = CostTerms.build(fp32.default_cost, horizon, fp32.feature_dim)
    low, high = fp32.action_low, fp32.action_high
    mean = np.tile((low + high) / 2, (horizon, 1)).astype(np.float32)  # (H, A) a plan from rest
    cost_err, act_err = [], []
    for o, b in zip(obs.astype(np.float32), h.astype(np.float32), strict=True):
        acts = rng.uniform(low, high, (samples, horizon, fp32.action_dim)).astype(np.float32)
        c32 = fp32.dynamics.rollout(o, b, fp32.W0, acts, terms)[0]
        c8 = int8.dynamics.rollout(o, b, int8.W0, acts, terms)[0]
        cost_err.append(np.abs(c8 - c32) / max(float(c32.std()), 1e-6))
        first = [plan(partial(_costs, rt, o, b, terms), mean, low, high, planner, np.random.default_rng(seed))[0]
                 for rt in (fp32, int8)]  # the same noise for both: only the costs differ
        act_err.append(np.max(np.abs(first[1] - first[0]) / (high - low)))
    ce, ae = np.concatenate(cost_err), np.asarray(act_err)
    return {"cost_error_rel_median": float(np.median(ce)), "cost_error_rel_p99": float(np.percentile(ce, 99)),
            "action_error_median": float(np.median(ae)), "action_error_max": float(ae.max()),
            "contexts": len(obs), "samples": samples,
            "definition": "cost error: |c_int8 - c_fp32| / std of the fp32 costs over the N sampled sequences; "
                          "action error: |a_int8 - a_fp32| of the planned first action / action range"}


def _costs(rt: Runtime, obs: np.ndarray, h: np.ndarray, terms: CostTerms, actions: np.ndarray) -> np.ndarray:
    return rt.dynamics.rollout(obs, h, rt.W0, actions, terms)[0]


def check_budget(measured: dict, budget: float) -> None:
    """A QuantizationError when the median cost or action error exceeds `budget`."""
    worst = max(measured["cost_error_rel_median"], measured["action_error_median"])
    if worst > budget:
        raise QuantizationError(
            f"int8 graphs miss the error budget {budget:g}: median cost error {measured['cost_error_rel_median']:.3g}"
            f" of the cost spread, median action error {measured['action_error_median']:.3g} of the action range; "
            "quantize fewer layers (e.g. --int8 f2) or raise --int8-budget")
