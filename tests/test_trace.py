"""``fpga-gan trace``: one input through every backend of a real build, the first disagreement named.

A small generator (conv, conv, k4 s2 p1 transposed conv, conv) is exported as an artifact and
compiled once; the tests corrupt copies of that build (one weight of one MVAU, in a saved stage
file or in the dataflow partition) and check that the trace names that layer first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.trace import format_trace, trace_build


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, conv_transpose2d, image_input, image_output, relu

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.a = nn.Sequential(conv2d(3, 4, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.b = nn.Sequential(conv2d(4, 4, 3, 1, 1, spec=spec), relu(spec, self.a[1]))
        self.up = nn.Sequential(conv_transpose2d(4, 4, 4, 2, 1, spec=spec), relu(spec, self.a[1]))
        self.out = conv2d(4, 3, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        return self.out_q(self.out(self.up(self.b(self.a(self.inp(x))))))


@pytest.fixture(scope="module")
def small_build(tmp_path_factory) -> Path:
    from brevitas.export import export_qonnx

    from fpga_gan.compiler.pipeline import CompileConfig, compile_model
    from fpga_gan.export.artifact import artifact_from_qonnx

    root = tmp_path_factory.mktemp("trace")
    torch.manual_seed(0)
    model = _Small().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    export_qonnx(model, torch.rand(1, 3, 8, 8), export_path=str(root / "small.onnx"), dynamo=False)
    artifact_from_qonnx(root / "small.onnx", root / "artifact", "small")
    build = root / "build"
    compile_model(CompileConfig(model=str(root / "artifact" / "model.qonnx.onnx"), board="kv260", target_fps=1000,
                                out_dir=build, log=lambda _: None))
    return build


def _copy(build: Path, dst: Path) -> Path:
    shutil.copytree(build, dst)
    return dst


def _corrupt_one_mvau_weight(path: Path) -> str:
    """Change one weight of the second MVAU in ``path`` to another value of its datatype."""
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(str(path))
    mvau = [n for n in model.graph.node if n.op_type.startswith("MVAU")][1]
    weights = model.get_initializer(mvau.input[1]).copy()
    dtype = model.get_tensor_datatype(mvau.input[1])
    index = (0,) * weights.ndim
    weights[index] = dtype.max() if weights[index] != dtype.max() else dtype.min()
    model.set_initializer(mvau.input[1], weights)
    model.save(str(path))
    return mvau.name


def _invoke(*args: str):
    from fpga_gan.cli import main

    return CliRunner().invoke(main, ["trace", *args], catch_exceptions=False)


def test_an_uncorrupted_build_traces_clean(small_build):
    result = trace_build(small_build)
    assert result.ok and result.first is None, format_trace(result)
    names = [run.name for run in result.runs]
    assert names[:2] == ["source", "cpu"] and names[-2:] == ["partition", "rtl_sim"]
    assert [n for n in names if n[:2].isdigit()] == sorted(p.stem for p in small_build.glob("[0-9][0-9]_*.onnx"))
    by_name = {run.name: run for run in result.runs}
    assert by_name["cpu"].output_equal is True                       # ONNX Runtime on the QCDQ graph
    assert by_name["05_dataflow_partition"].compared > 10            # the partition's layers are traced inside
    assert "not simulated" in by_name["rtl_sim"].note
    cli = _invoke(str(small_build))
    assert cli.exit_code == 0, cli.output
    assert "all backends agree" in cli.output


def test_a_corrupted_weight_in_a_stage_file_is_named_first(small_build, tmp_path):
    build = _copy(small_build, tmp_path / "build")
    node = _corrupt_one_mvau_weight(build / "04_convert_to_hw.onnx")
    result = trace_build(build)
    first = result.first
    assert first is not None and first.backend == "04_convert_to_hw" and first.reference == "03_streamline"
    assert first.node == node and first.op_type == "MVAU"
    assert first.differing > 0 and len(first.first_index) == 4
    assert all(run.ok for run in result.runs[:result.runs.index(next(r for r in result.runs if not r.ok))])
    cli = _invoke(str(build))
    assert cli.exit_code == 1
    assert (f"first disagreement: 04_convert_to_hw disagrees with 03_streamline at tensor '{first.tensor}', "
            f"produced by node '{node}' (MVAU): {first.differing} of") in cli.output


def test_a_corrupted_weight_in_the_partition_is_named_first(small_build, tmp_path):
    build = _copy(small_build, tmp_path / "build")
    node = _corrupt_one_mvau_weight(build / "partition" / "05_dataflow_partition.onnx")  # the copy's own, not the original's
    first = trace_build(build).first
    assert first is not None and first.backend == "05_dataflow_partition"
    assert first.node == node and first.op_type == "MVAU"      # stage 05 owns its partition, not yet specialized


def test_the_input_is_validated_with_clear_errors(small_build, tmp_path):
    good = np.load(small_build / "verify_input.npy")
    assert trace_build(small_build, _save(tmp_path / "frame.npy", good[0].astype(np.uint8))).ok   # (C, H, W) too
    cases = {
        "shape.npy": (np.zeros((1, 3, 4, 4), np.uint8), r"must have shape \(1, 3, 8, 8\).*got \(1, 3, 4, 4\)"),
        "fraction.npy": (good + 0.5, "must hold integer codes, got dtype float32 with non-integer values"),
        "range.npy": (np.full(good.shape, 256, np.int32), r"codes must lie in \[0, 255\] \(UINT8 input\)"),
        "text.npy": (None, "is not a NumPy .npy file"),
    }
    for name, (array, message) in cases.items():
        path = tmp_path / name
        if array is None:
            path.write_text("not numpy")
        else:
            np.save(path, array)
        with pytest.raises(CompileError, match=message):
            trace_build(small_build, path)
    cli = _invoke(str(small_build), "--input", str(tmp_path / "range.npy"))
    assert cli.exit_code == 2 and "codes must lie in [0, 255]" in cli.output and "Traceback" not in cli.output
    missing = _invoke(str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "no state.json" in missing.output


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_the_recorded_rtl_simulation_is_traced(tiny_unet_build, tmp_path):
    """The rtl_sim backend: the frames `fpga-gan sim` recorded, against FINN's Python execution."""
    build, _ = tiny_unet_build
    clean = trace_build(build)
    sim = next(run for run in clean.runs if run.name == "rtl_sim")
    assert clean.ok and sim.compared >= 2 and sim.output_equal is True, format_trace(clean)
    copy = _copy(build, tmp_path / "build")
    outputs = copy / "sim" / "result.json.outputs.npy"
    recorded = np.load(outputs)
    recorded.reshape(-1)[5] ^= 0x01                  # one bit of one byte the simulator returned
    np.save(outputs, recorded)
    first = trace_build(copy).first
    assert first is not None and first.backend == "rtl_sim" and first.reference == "partition"
    assert first.differing == 1 and first.first_index[0] == 0
