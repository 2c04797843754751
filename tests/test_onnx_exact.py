"""The exported QCDQ model gives QONNX's output codes in any ONNX Runtime session.

Users load ``model.qcdq.onnx`` in their own sessions, with default options: every optimisation level
(and the plain ``InferenceSession(path)`` call) must give the same codes as qonnx's execution of the
QONNX model, on both ONNX Runtime versions the project installs (.venv: the compiler's; .venv-board:
numpy 1.26, the board image's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
BOARD_VENV_PYTHON = REPO / ".venv-board" / "bin" / "python"
PYTHONS = {"venv": Path(sys.executable)}
if BOARD_VENV_PYTHON.is_file():
    PYTHONS["venv-board"] = BOARD_VENV_PYTHON

# Run in each interpreter: the model's float output under every way a user may open a session.
SESSIONS_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
path, inputs, out = sys.argv[1:4]
x = np.load(inputs)
results = {}
plain = ort.InferenceSession(path)          # what a user types
results["plain"] = plain.run(None, {plain.get_inputs()[0].name: x})[0]
for level in ("default", "ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
    opts = ort.SessionOptions()
    if level != "default":
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    results[level] = s.run(None, {s.get_inputs()[0].name: x})[0]
np.savez(out, **results)
print(ort.__version__)
"""


def _session_codes(python: Path, qcdq: Path, x: np.ndarray, out_scale: float, tmp: Path) -> tuple[str, dict]:
    """(onnxruntime version, {session kind: output codes}) of ``qcdq`` run by ``python``."""
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "x.npy", x)
    env = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(python), "-c", SESSIONS_SCRIPT, str(qcdq), str(tmp / "x.npy"), str(tmp / "y.npz")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with np.load(tmp / "y.npz") as y:
        return run.stdout.strip(), {k: np.round(y[k] / out_scale).astype(np.int64) for k in y.files}


def _qonnx_codes(qonnx_path: Path, x: np.ndarray, out_scale: float) -> np.ndarray:
    """qonnx's reference execution of the whole batch (shapes re-inferred for it)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(qonnx_path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = len(x)
    del model.graph.value_info[:]
    model = model.transform(InferShapes())
    y = execute_onnx(model, {model.graph.input[0].name: x})[model.graph.output[0].name]
    return np.round(y / out_scale).astype(np.int64)


def _assert_exact_everywhere(artifact: Path, samples: int, tmp: Path, seed: int = 0) -> None:
    spec = json.loads((artifact / "model.json").read_text())
    inp, out = spec["inputs"][0], spec["outputs"][0]
    lo, hi = inp["range"]
    codes = np.random.default_rng(seed).integers(lo, hi + 1, (samples, *inp["shape"][1:]))
    x = codes.astype(np.float32) * np.float32(inp["scale"])
    reference = _qonnx_codes(artifact / spec["files"]["qonnx"], x, out["scale"])
    for venv, python in PYTHONS.items():
        version, sessions = _session_codes(python, artifact / spec["files"]["qcdq"], x, out["scale"], tmp / venv)
        for kind, got in sessions.items():
            wrong = int(np.count_nonzero(got != reference))
            assert wrong == 0, f"onnxruntime {version} ({venv}), {kind} session: {wrong} codes differ from QONNX"


@pytest.mark.parametrize("name", ["tryon", "dcgan", "editor", "designer"])
def test_zoo_qcdq_model_is_exact_in_every_onnxruntime_session(name, zoo_artifacts, tmp_path):
    _assert_exact_everywhere(zoo_artifacts[name], 64, tmp_path)


# --- graph patterns, on small hand-written QONNX graphs ------------------------------------------------

QUANT_DOMAIN = "qonnx.custom_op.general"


def _quant(graph_nodes, inits, name, x, scale, bits, signed, narrow=0) -> str:
    inits += [numpy_helper.from_array(np.asarray(scale, np.float32), f"{name}_scale"),
              numpy_helper.from_array(np.float32(0), f"{name}_zero"),
              numpy_helper.from_array(np.float32(bits), f"{name}_bits")]
    graph_nodes.append(helper.make_node("Quant", [x, f"{name}_scale", f"{name}_zero", f"{name}_bits"], [name],
                                        name=name, domain=QUANT_DOMAIN, signed=signed, narrow=narrow,
                                        rounding_mode="ROUND"))
    return name


def _layer_qonnx(path: Path, op: str, cin: int, cout: int, bias_on_grid: bool, seed: int = 0,
                 hw: tuple[int, int] = (6, 5), weight_bits: int = 4, weight_std: float = 0.1) -> Path:
    """input Quant -> op (quantized weight and 16-bit bias) -> Relu -> output Quant, as QONNX.

    ``bias_on_grid``: the bias scale is input scale x weight scale (Brevitas IntBias) rather than its
    own finer scale (a bias with internal scaling, as the zoo's).
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    s_x = 2.0 ** -4
    s_w = 2.0 ** -rng.integers(3, 6, cout)                  # per output channel, powers of two
    if op == "Gemm":
        in_shape, out_shape = [1, cin], [1, cout]
        w_shape, w_scale_shape = (cout, cin), (cout, 1)  # transB=1
    elif op == "ConvTranspose":
        in_shape, out_shape = [1, cin, *hw], [1, cout, hw[0] + 2, hw[1] + 2]
        w_shape, w_scale_shape = (cin, cout, 3, 3), (1, cout, 1, 1)
    else:
        in_shape, out_shape = [1, cin, *hw], [1, cout, *hw]
        w_shape, w_scale_shape = (cout, cin, 3, 3), (cout, 1, 1, 1)
    inits.append(numpy_helper.from_array(rng.normal(0, weight_std, w_shape).astype(np.float32), "w_float"))
    inits.append(numpy_helper.from_array(rng.normal(0, 0.3, cout).astype(np.float32), "b_float"))
    xq = _quant(nodes, inits, "x_q", "x", s_x, 8, 0)
    wq = _quant(nodes, inits, "w_q", "w_float", s_w.reshape(w_scale_shape), weight_bits, 1, narrow=1)
    bq = _quant(nodes, inits, "b_q", "b_float", s_x * s_w if bias_on_grid else 2.0 ** -18, 16, 1)
    attrs = {"transB": 1} if op == "Gemm" else {"kernel_shape": [3, 3]}
    if op == "Conv":
        attrs["pads"] = [1, 1, 1, 1]
    nodes.append(helper.make_node(op, [xq, wq, bq], ["acc"], name="layer", **attrs))
    nodes.append(helper.make_node("Relu", ["acc"], ["act"], name="relu"))
    _quant(nodes, inits, "y", "act", 2.0 ** -2, 4, 0)
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _export(tmp_path: Path, **kw) -> tuple[Path, onnx.ModelProto]:
    from fpga_gan.export.artifact import artifact_from_qonnx

    src = _layer_qonnx(tmp_path / "src.onnx", **kw)
    artifact_from_qonnx(src, tmp_path / "artifact", "layer")
    return tmp_path / "artifact", onnx.load(tmp_path / "artifact" / "model.qcdq.onnx")


def _producer(model: onnx.ModelProto, tensor: str):
    return next((n for n in model.graph.node if tensor in n.output), None)


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose", "Gemm"])
def test_bias_on_the_accumulator_grid_is_int32_dequantize_linear(op, tmp_path):
    artifact, qcdq = _export(tmp_path, op=op, cin=5, cout=7, bias_on_grid=True)
    layer = next(n for n in qcdq.graph.node if n.op_type == op)
    bias_dq = _producer(qcdq, layer.input[2])
    assert bias_dq is not None and bias_dq.op_type == "DequantizeLinear"      # the standard QDQ form
    codes = next(i for i in qcdq.graph.initializer if i.name == bias_dq.input[0])
    assert codes.data_type == TensorProto.INT32
    _assert_exact_everywhere(artifact, 16, tmp_path)


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose", "Gemm"])
def test_bias_finer_than_the_accumulator_grid_stays_exact(op, tmp_path):
    artifact, qcdq = _export(tmp_path, op=op, cin=5, cout=7, bias_on_grid=False)
    layer = next(n for n in qcdq.graph.node if n.op_type == op)
    x_dq = _producer(qcdq, layer.input[0])
    scale = next(i for i in qcdq.graph.initializer if i.name == x_dq.input[1])
    assert x_dq.op_type == "DequantizeLinear" and list(scale.dims) == [5]   # one (equal) scale per channel
    _assert_exact_everywhere(artifact, 16, tmp_path)


def test_single_channel_layer_with_a_fine_bias_stays_exact(tmp_path):
    artifact, qcdq = _export(tmp_path, op="Conv", cin=1, cout=4, bias_on_grid=False)
    layer = next(n for n in qcdq.graph.node if n.op_type == "Conv")
    x_dq = _producer(qcdq, layer.input[0])
    assert next(a.i for a in x_dq.attribute if a.name == "axis") == 2       # per row: 1 channel is per-tensor
    _assert_exact_everywhere(artifact, 16, tmp_path)


def test_8_bit_layer_that_could_saturate_ort_int8_kernels_runs_in_float_and_exactly(tmp_path):
    """8-bit input codes up to 255 times 8-bit weights past 64: on x86 CPUs without VNNI, ONNX
    Runtime's fused uint8 x int8 kernel adds product pairs into a saturating int16 (the editor's
    first layer differed from QONNX in 60% of its output codes there). The layer runs in float."""
    for sub in ("wide", "narrow"):
        (tmp_path / sub).mkdir()
    artifact, qcdq = _export(tmp_path / "wide", op="Conv", cin=6, cout=4, bias_on_grid=True, weight_bits=8,
                             weight_std=2.0)
    layer = next(n for n in qcdq.graph.node if n.op_type == "Conv")
    assert _producer(qcdq, layer.input[1]) is None                     # float32 weights: no QDQ fusion
    assert any(i.name == layer.input[1] and i.data_type == TensorProto.FLOAT for i in qcdq.graph.initializer)
    _assert_exact_everywhere(artifact, 16, tmp_path / "wide")

    _, narrow = _export(tmp_path / "narrow", op="Conv", cin=6, cout=4, bias_on_grid=True)   # 4-bit: cannot saturate
    layer = next(n for n in narrow.graph.node if n.op_type == "Conv")
    assert _producer(narrow, layer.input[1]).op_type == "DequantizeLinear"
