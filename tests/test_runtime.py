"""The runtime: light imports, input validation with clear errors, and the cpu backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fpga_gan.runtime import Accelerator, ArtifactError, InputError


def test_runtime_import_loads_neither_torch_nor_finn():
    code = ("import sys, fpga_gan.runtime as r; "
            "bad = [m for m in ('torch', 'finn', 'brevitas', 'qonnx', 'onnxruntime') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"fpga_gan.runtime imported {out.stdout.strip()}"


def test_cpu_backend_runs_a_batch(zoo_artifacts):
    with Accelerator.open(zoo_artifacts["dcgan"], backend="cpu") as acc:
        z = acc.quantize_input(np.random.default_rng(0).standard_normal((3, 64, 1, 1)))
        out = acc.run(z)
        assert out.shape == (3, 3, 64, 64) and out.dtype == np.uint8
        # one sample alone gives the same codes as inside a batch
        assert np.array_equal(acc.run(z[1]), out[1:2])


def test_auto_backend_falls_back_to_cpu(zoo_artifacts):
    with Accelerator.open(zoo_artifacts["dcgan"]) as acc:
        assert acc.backend_name == "cpu"


@pytest.mark.parametrize("batch, message", [
    (np.zeros((2, 24, 64, 47), np.uint8), "must have shape"),
    (np.full((1, 24, 64, 48), np.nan, np.float32), "NaN"),
    (np.full((1, 24, 64, 48), 300, np.int32), r"\[0, 255\]"),
    (np.full((1, 24, 64, 48), -1, np.int32), r"\[0, 255\]"),
    (np.full((1, 24, 64, 48), 0.5, np.float32), "integer codes"),
    (np.full((1, 24, 64, 48), "a"), "dtype"),
])
def test_bad_inputs_are_refused_with_the_reason(zoo_artifacts, batch, message):
    with Accelerator.open(zoo_artifacts["tryon"], backend="cpu") as acc:
        with pytest.raises(InputError, match=message):
            acc.run(batch)


def test_bad_artifacts_are_refused(tmp_path, zoo_artifacts):
    with pytest.raises(ArtifactError, match="not found"):
        Accelerator.open(tmp_path / "nope")
    with pytest.raises(ArtifactError, match="no model.json"):
        Accelerator.open(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(zoo_artifacts["dcgan"], broken)
    (broken / "model.qcdq.onnx").unlink()
    with pytest.raises(ArtifactError, match="model.qcdq.onnx"):
        Accelerator.open(broken, backend="cpu")
    meta = json.loads((broken / "model.json").read_text())
    (broken / "model.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(ArtifactError, match="schema_version"):
        Accelerator.open(broken, backend="cpu")
    (broken / "model.json").write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Accelerator.open(broken, backend="cpu")
    with pytest.raises(ValueError, match="unknown backend 'fpga'"):
        Accelerator.open(zoo_artifacts["dcgan"], backend="fpga")
