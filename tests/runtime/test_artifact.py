"""The artifact is protected as a whole: every way of breaking it is refused with one clear line."""

import json
import shutil
import subprocess
import sys

import pytest
from mbmrl.runtime import ArtifactError, Manifest, load
from mbmrl.runtime.artifact import DIGEST, sha256_file


@pytest.fixture()
def copy(tiny_artifact, tmp_path):
    out = tmp_path / "a"
    shutil.copytree(tiny_artifact, out)
    return out


def _edit_manifest(root, change, redigest=False):
    m = json.loads((root / "manifest.json").read_text())
    change(m)
    (root / "manifest.json").write_text(json.dumps(m))
    if redigest:
        (root / DIGEST).write_text(sha256_file(root / "manifest.json"))


def test_an_edited_manifest_is_refused(copy):
    _edit_manifest(copy, lambda m: m.update(action_low=[-1e6], action_high=[1e6]))  # a torque of -8374 once
    with pytest.raises(ArtifactError, match="modified or corrupted"):
        load(copy)
    (copy / DIGEST).unlink()
    with pytest.raises(ArtifactError, match=f"no {DIGEST}"):
        load(copy)


def test_an_empty_file_list_and_impossible_values_are_refused_even_with_a_matching_digest(copy):
    _edit_manifest(copy, lambda m: m.update(files={}), redigest=True)
    with pytest.raises(ArtifactError, match="lists no files"):
        Manifest.load(copy)
    _edit_manifest(copy, lambda m: m.update(action_low=[2.0], action_high=[-2.0]), redigest=True)
    with pytest.raises(ArtifactError, match="action_low < action_high"):
        Manifest.load(copy)


def test_broken_graphs_and_params_give_one_line_errors(copy):
    (copy / "features.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load(copy)
    with pytest.raises(ArtifactError, match="not a loadable ONNX graph") as e:
        load(copy, verify=False)
    assert "\n" not in str(e.value)
    (copy / "params.npz").write_bytes(b"\0" * 10)
    with pytest.raises(ArtifactError, match="not a readable npz"):
        load(copy, verify=False)


def test_serve_refuses_a_broken_artifact_in_one_line(copy):
    (copy / "rollout.onnx").write_bytes(b"garbage")
    p = subprocess.run([sys.executable, "-m", "mbmrl.export.cli", "serve", str(copy), "--port", "1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "sha256 mismatch" in p.stderr and "Traceback" not in p.stderr
