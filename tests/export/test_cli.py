"""The console script: every subcommand has help, and errors speak to the user."""

import subprocess
import sys

import pytest

SUBCOMMANDS = ["train", "export", "serve", "eval", "replay", "bench", "quickstart"]


def run(*args):
    cmd = [sys.executable, "-m", "mbmrl.export.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help(cmd):
    p = run(cmd, "--help")
    assert p.returncode == 0 and "usage: mbmrl" in p.stdout


def test_train_flags_come_from_the_config_dataclass():
    p = run("train", "--help")
    assert "--rollout-steps" in p.stdout and "--device" in p.stdout and "meta-training iterations" in p.stdout


def test_missing_run_and_artifact_give_clear_errors(tmp_path):
    p = run("export", str(tmp_path / "nope"), "--out", str(tmp_path / "a"))
    assert p.returncode == 2 and "model.pt not found" in p.stderr
    p = run("serve", str(tmp_path))
    assert p.returncode != 0 and "no manifest.json" in p.stderr
    p = run("train", "--family", "nosuchfamily", "--out", str(tmp_path / "r"))
    assert p.returncode == 2 and "unknown task family" in p.stderr


def test_train_writes_the_resolved_config_and_a_checkpoint_with_its_constructor_args(tiny_run):
    import json

    import torch
    from mbmrl.train.checkpoint import Checkpoint

    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["iters"] == 40 and cfg["family"] == "pendulum"
    ckpt = torch.load(tiny_run / "model.pt", weights_only=False)  # a plain dict: readable without mbmrl
    assert ckpt["args"]["hidden_size"] == 8 and "state_dict" in ckpt
    assert Checkpoint.load(tiny_run / "model.pt").model().hidden_size == 8
    assert (tiny_run / "train_curve.png").stat().st_size > 1000


def test_the_parser_registers_every_subcommand_with_its_flags_without_torch():
    """No argv sniffing: all subcommands' flags exist at once, and building the parser imports no torch."""
    code = ("import sys; from mbmrl.export.cli import build_parser; p = build_parser(); "
            "ns = p.parse_args(['eval', 'A', '--contexts', '0,16']); assert ns.contexts == '0,16'; "
            "ns = p.parse_args(['train', '--iters', '3']); assert ns.iters == 3; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_bench_writes_every_stable_key(tiny_artifact, tmp_path):
    """`mbmrl bench --json` has every documented key; each measured one is a positive number."""
    import json

    from mbmrl.export.bench import KEYS
    from mbmrl.export.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", str(tiny_artifact), "--repeats", "5", "--samples", "32", "--no-compile",
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert set(KEYS) <= set(got) and got["samples"] == 32
    for key in KEYS:
        if key in ("act_torch_compile_ms",) or (key == "act_pytorch_mppi_ms" and got[key] is None):
            continue
        values = got[key] if isinstance(got[key], list) else [got[key]]
        assert all(isinstance(v, float) and v > 0 for v in values), key
    assert got["act_torch_compile_ms"] is None  # --no-compile
    assert got["pi4_act_ms_range"][0] < got["pi4_act_ms_estimate"] == got["pi4_act_ms_range"][1]


def test_pytorch_mppi_plans_with_our_model(tiny_artifact):
    """The pytorch_mppi column runs MPPI over our model and gives an action inside the bounds."""
    pytest.importorskip("pytorch_mppi")
    import numpy as np
    from mbmrl.export.bench_engines import pytorch_mppi_act
    from mbmrl.runtime import load

    act = pytorch_mppi_act(str(tiny_artifact), 1, {"samples": 32, "horizon": 15})
    rt = load(tiny_artifact)
    a = act()
    assert a.shape == (rt.action_dim,) and np.all(a >= rt.action_low - 1e-6) and np.all(a <= rt.action_high + 1e-6)
