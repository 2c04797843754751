"""The graph inputs users' generators have: float pre-processing in front of the input quantizer,
and conditional generators with an image and a condition vector.

* Pre-processing a quantizer makes irrelevant (a ReLU before an unsigned quantizer, a Clip that
  keeps its range, a positive constant scale, a shift by whole steps) is absorbed into the input
  codes, checked exhaustively; anything else is refused naming the node and the op.
* A conditional generator written in Brevitas (the label tiled to planes with ``expand`` and
  concatenated with the image) compiles to one all-RTL partition with two input streams, runs
  on the cpu backend, on the pynq backend's DMA path (test double) and in Verilator, all with
  the codes PyTorch gives.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model
from torch import nn

from fpga_gan.compiler.passes.integer_io import FeedInputCodes, all_input_codes, input_codes

QONNX = "qonnx.custom_op.general"


def _quiet(_message: str) -> None:
    pass


# ---------------------------------------------------------------------------- pre-processing


def _pre_model(pre: list[tuple[str, dict]], *, scale: float, bits: int, signed: int) -> ModelWrapper:
    """x -> pre-processing nodes -> Quant -> Relu: the head of an exported generator."""
    nodes, inits, tensor = [], [], "x"
    for k, (op, kw) in enumerate(pre):
        out = f"p{k}"
        inputs = [tensor]
        for j, value in enumerate(kw.get("consts", [])):
            name = f"c{k}_{j}"
            inits.append((name, np.asarray(value, np.float32)))
            inputs.append(name)
        if kw.get("swap"):
            inputs.reverse()
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{k}"))
        tensor = out
    nodes += [helper.make_node("Quant", [tensor, "s", "z", "b"], ["q"], domain=QONNX, name="InputQuant",
                               signed=signed, narrow=0, rounding_mode="ROUND"),
              helper.make_node("Relu", ["q"], ["y"], name="Body")]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 3, 3]) for n in ("x", "y")]
    model = ModelWrapper(qonnx_make_model(helper.make_graph(nodes, "g", vi[:1], vi[1:])))
    for name, value in [*inits, ("s", np.float32(scale)), ("z", np.float32(0)), ("b", np.float32(bits))]:
        model.set_initializer(name, np.asarray(value, np.float32))
    return model.transform(InferShapes())


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(copy.deepcopy(model), {"x": x})["y"]


@pytest.mark.parametrize("pre, scale, bits, signed, input_scale, zero_point", [
    ([("Relu", {})], 1 / 256, 8, 0, 1 / 256, 0),                                   # irrelevant before uint
    ([("Clip", {"consts": [0.0, 6.0]})], 0.25, 4, 0, 0.25, 0),                     # keeps [0, 3.75]
    ([("Clip", {"consts": [-1.0, 1.0]})], 1 / 128, 8, 1, 1 / 128, 0),              # keeps [-1, 127/128]
    ([("Mul", {"consts": [255.0]})], 1.0, 8, 0, 1 / 255, 0),                       # [0, 1] pixels x 255
    ([("Div", {"consts": [2.0]})], 0.5, 4, 1, 1.0, 0),
    ([("Relu", {}), ("Mul", {"consts": [0.5]})], 1 / 256, 8, 0, 1 / 128, 0),
    ([("Mul", {"consts": [2.0]}), ("Add", {"consts": [-1.0]})], 1 / 128, 8, 1, 1 / 256, -128),  # 2x - 1
    ([("Sub", {"consts": [0.5]})], 1 / 16, 4, 1, 1 / 16, -8),
])
def test_preprocessing_is_absorbed_into_the_input_codes(pre, scale, bits, signed, input_scale, zero_point):
    model = _pre_model(pre, scale=scale, bits=bits, signed=signed)
    codes = input_codes(model)
    assert codes.pre == [f"{op}_{k}" for k, (op, _) in enumerate(pre)]
    assert (codes.scale, codes.input_scale, codes.zero_point) == (scale, pytest.approx(input_scale), zero_point)
    after = copy.deepcopy(model).transform(FeedInputCodes(codes))
    assert [n.op_type for n in after.graph.node] == ["Mul", "Quant", "Relu"]      # the chain is gone
    assert after.get_tensor_datatype("x") == codes.datatype
    dt = codes.datatype
    every = np.arange(dt.min(), dt.max() + 1, dtype=np.float32)
    for start in range(0, every.size, 18):                # (1, 2, 3, 3) blocks covering every code
        q = np.resize(every[start:start + 18], 18).reshape(1, 2, 3, 3)
        # the codes graph on q computes exactly what the user's graph does on the values q stands for
        assert np.array_equal(_run(after, q), _run(model, codes.values(q)))


@pytest.mark.parametrize("pre, signed, match", [
    ([("Relu", {})], 1, r"graph input 'x' feeds Relu node 'Relu_0' .*code -8 .*ReLU is irrelevant only before an "
                        r"unsigned quantizer"),
    ([("Clip", {"consts": [0.0, 1.0]})], 0, r"Clip node 'Clip_0' .*does not survive it"),
    ([("Mul", {"consts": [-2.0]})], 0, r"Mul node 'Mul_0' .*scales by -2; only a positive constant"),
    ([("Mul", {"consts": [[[[1.0]], [[2.0]]]]})], 0, r"Mul node 'Mul_0' .*per-channel operand"),
    ([("Add", {"consts": [0.3]})], 0, r"Add node 'Add_0' .*shifts the input by 1.2 quantizer steps, not a whole"),
    ([("Sub", {"consts": [1.0], "swap": True})], 1, r"Sub node 'Sub_0' .*second operand"),
    ([("Sigmoid", {})], 0, r"graph input 'x' feeds Sigmoid 'Sigmoid_0' before its input Quant; the compiler absorbs "
                           r"only Relu, Clip, Mul, Div, Add, Sub"),
])
def test_preprocessing_that_matters_is_refused_naming_node_and_op(pre, signed, match):
    model = _pre_model(pre, scale=0.25, bits=4, signed=signed)
    with pytest.raises(ValueError, match=match):
        input_codes(model)


# ---------------------------------------------------------------------- conditional generator

LABELS, SIZE = 4, 8


class _CondGen(nn.Module):
    """A label-conditioned image-to-image generator as a user writes it: float pre-processing in
    front of each input quantizer (a ReLU on the image, the one-hot label scaled by 0.5), the
    label tiled to planes with ``expand`` and concatenated with the image."""

    def __init__(self) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, image_input, image_output, relu

        spec = QuantSpec(weight_bits=4, act_bits=4)
        self.inp, self.lab = image_input(spec), image_input(spec)
        self.enc = nn.Sequential(conv2d(3 + LABELS, 6, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.out = conv2d(6, 3, 3, 1, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, img, label):
        x = self.inp(torch.relu(img))
        planes = self.lab(label * 0.5)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.out_q(self.out(self.enc(torch.cat([x, planes], 1))))


@pytest.fixture(scope="module")
def cond_build(tmp_path_factory):
    """The conditional generator exported to QONNX, compiled for kv260 and given its artifact files
    (model.json + CPU graph, as ``make bitstream`` derives them from a bare QONNX file)."""
    from brevitas.export import export_qonnx

    from fpga_gan.compiler.pipeline import CompileConfig, compile_model
    from fpga_gan.export.artifact import artifact_from_qonnx

    root = tmp_path_factory.mktemp("cond")
    torch.manual_seed(4)
    model = _CondGen().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = root / "cond.onnx"
    export_qonnx(model, (torch.rand(1, 3, SIZE, SIZE), torch.rand(1, LABELS)), export_path=str(path), dynamo=False)
    result = compile_model(CompileConfig(model=str(path), board="kv260", out_dir=root / "build", log=_quiet))
    artifact_from_qonnx(path, result.build_dir, "cond")
    return model, path, result


def _torch_codes(model: nn.Module, img_codes: np.ndarray, label_codes: np.ndarray, acc) -> np.ndarray:
    img_spec, label_spec = acc.input_specs
    with torch.no_grad():
        y = model(torch.from_numpy(img_codes.astype(np.float32) * np.float32(img_spec.scale)),
                  torch.from_numpy(label_codes.astype(np.float32) * np.float32(label_spec.scale)))
    return np.round(y.numpy() / acc.output_spec.scale).astype(np.int64)


def _inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(n, 3, SIZE, SIZE)).astype(np.uint8)
    label = (np.eye(LABELS)[rng.integers(0, LABELS, size=n)] * 128).astype(np.uint8)   # one-hot 1.0 = code 128
    return img, label


def test_conditional_generator_compiles_to_one_rtl_partition_with_two_streams(cond_build):
    from qonnx.custom_op.registry import getCustomOp

    from fpga_gan.compiler.pipeline import STAGES

    _, _, result = cond_build
    report, build = result.report, result.build_dir
    assert [s["stage"] for s in report["verification"]] == list(STAGES)
    assert all(s["bit_exact"] for s in report["verification"])
    assert all(n["op_type"].endswith("_rtl") for n in report["nodes"])
    assert {"UpsampleNearest_rtl", "StreamingConcat_rtl"} <= {n["op_type"] for n in report["nodes"]}
    parent = ModelWrapper(str(build / f"{len(STAGES) - 1:02d}_{STAGES[-1]}.onnx"))
    (partition,) = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    assert {n.op_type for n in parent.graph.node} <= {"StreamingDataflowPartition", "Transpose", "Mul", "Reshape"}
    from fpga_gan.compiler.pipeline import partition_file

    child = ModelWrapper(str(partition_file(parent, build)))
    # stream k is graph input k: the image (NHWC planes), then the label (C codes, one "pixel")
    assert [child.get_tensor_shape(i.name) for i in child.graph.input] == [[1, SIZE, SIZE, 3], [1, 1, 1, LABELS]]
    assert [i.name for i in parent.graph.input] == ["global_in", "global_in_1"]
    # verification inputs: one file per graph input; the single-input name is not used
    assert not (build / "verify_input.npy").exists()
    assert np.load(build / "verify_input_0.npy").shape == (1, 3, SIZE, SIZE)
    assert np.load(build / "verify_input_1.npy").shape == (1, LABELS)
    meta = json.loads((build / "model.json").read_text())
    assert [(t["name"], t["shape"], t["scale"]) for t in meta["inputs"]] == [
        ("global_in", [None, 3, SIZE, SIZE], 1 / 256), ("global_in_1", [None, LABELS], 1 / 128)]   # label x 0.5


def test_conditional_generator_runs_on_the_cpu_backend_as_in_pytorch(cond_build):
    from fpga_gan.runtime import Accelerator, InputError

    model, _, result = cond_build
    build = result.build_dir
    with Accelerator.open(build, backend="cpu") as acc:
        codes = [np.load(build / f"verify_input_{k}.npy") for k in range(2)]
        expected = np.load(build / "verify_expected.npy")
        assert np.array_equal(acc.run(codes), np.round(expected / acc.output_spec.scale))    # the compiler's pair
        img, label = _inputs(3)
        out = acc.run((img, label))
        assert out.shape == (3, 3, SIZE, SIZE) and out.dtype == np.uint8
        assert np.array_equal(out, _torch_codes(model, img, label, acc))
        assert np.array_equal(acc.run({"global_in_1": label, "global_in": img}), out)
        assert np.array_equal(acc.run((img[1], label[1])), out[1:2])               # one sample, no batch axis
        # real values to codes, input by input: the one-hot 1.0 is code 128 (scale 1/128)
        img_q, label_q = acc.quantize_input((img / 256.0, label / 128.0))
        assert np.array_equal(img_q, img) and np.array_equal(label_q, label)
        for bad, message in [(img, "2 inputs .*pass a tuple"), ((img,), "1 input arrays for a generator with 2"),
                             ((img, label[:2]), "same number of samples.*'global_in' 3, 'global_in_1' 2"),
                             ({"global_in": img}, "missing \\['global_in_1'\\]"),
                             ((img, label.astype(np.int32) * 4), "'global_in_1' codes must lie in \\[0, 255\\]")]:
            with pytest.raises(InputError, match=message):
                acc.run(bad)


def _cond_manifest(build: Path, art: Path) -> dict:
    from fpga_gan.runtime.manifest import PACKING_ORDER, sha256_file

    meta = json.loads((build / "model.json").read_text())

    def tensor(spec):
        return {k: spec[k] for k in ("name", "shape", "layout", "dtype", "bits", "signed")}

    def stream(spec, elems):
        shape = list(spec["shape"][2:]) + [spec["shape"][1]] if len(spec["shape"]) == 4 else [1, 1, spec["shape"][1]]
        n = int(np.prod(shape))
        return {"bits": spec["bits"], "signed": spec["signed"], "elems_per_beat": elems,
                "beat_bytes": (spec["bits"] * elems + 7) // 8, "beats_per_frame": n // elems, "shape_nhwc": shape}

    inputs, out = meta["inputs"], meta["outputs"][0]
    return {"schema_version": 1, "name": "cond-kv260", "model": "cond", "model_sha256": sha256_file(art / "model.qonnx.onnx"),
            "board": "kv260", "pynq_board": "KV260", "part": "xck26-sfvc784-2LV-c", "clock_mhz": 200.0,
            "finn_plus_version": "test", "fpga_gan_version": "test", "vivado_version": None,
            "bitstream": "cond-kv260.bit", "hwh": "cond-kv260.hwh",
            "dma": {"input": ["idma0", "idma1"], "output": "odma0"},
            "input": [tensor(s) for s in inputs], "output": tensor(out),
            "packing": {"order": PACKING_ORDER, "input": [stream(inputs[0], 3), stream(inputs[1], 2)],
                        "output": stream(out, 3)}, "files": {}}


def test_conditional_generator_on_the_pynq_backend_packs_one_dma_per_input(cond_build, tmp_path, monkeypatch):
    """The board path against the pynq test double: one buffer and IODMA per input, the output
    DMA started first, the accelerator running once both inputs flow; codes equal the cpu's."""
    import jsonschema

    from fpga_gan.runtime import Accelerator, ArtifactError
    from fpga_gan.runtime.accelerator import Artifact
    from fpga_gan.runtime.cpu import CpuBackend
    from fpga_gan.runtime.manifest import write_manifest

    from .pynq_double import PynqDouble

    _, _, result = cond_build
    art = tmp_path / "cond-kv260"
    art.mkdir()
    for name in ("model.json", "model.qonnx.onnx", "model.qcdq.onnx"):
        shutil.copy2(result.build_dir / name, art / name)
    for suffix in (".bit", ".hwh"):
        (art / f"cond-kv260{suffix}").write_bytes(b"TEST DOUBLE PLACEHOLDER, not a bitstream")
    manifest = _cond_manifest(result.build_dir, art)
    written = json.loads(write_manifest(art, manifest).read_text())
    repo = Path(__file__).resolve().parents[1]
    jsonschema.validate(written, json.loads((repo / "bitstreams" / "manifest.schema.json").read_text()))

    cpu = CpuBackend(Artifact.load(art))
    # the double decodes NHWC streams back to NCHW; the label stream is a (1, 1, C) "pixel"
    double = PynqDouble(written["packing"], lambda xs: cpu.run((xs[0], xs[1].reshape(len(xs[1]), -1))),
                        ip_names=("idma0", "idma1", "odma0"), dma=("idma0", "idma1", "odma0"))
    monkeypatch.setitem(sys.modules, "pynq", double.module)
    monkeypatch.setenv("BOARD", "KV260")
    img, label = _inputs(4, seed=2)
    with Accelerator.open(art, backend="pynq") as acc, Accelerator.open(art, backend="cpu") as ref:
        got = acc.run((img, label))
        assert np.array_equal(got, ref.run((img, label)))
    starts = double.starts()
    assert starts[0] == "odma0" and sorted(starts[1:]) == ["idma0", "idma1"]
    allocs = [c[1] for c in double.calls if c[0] == "allocate"]
    assert allocs == [(4, SIZE * SIZE * 3), (4, LABELS), (4, SIZE * SIZE * 3)]    # image, label, output
    assert double.live_buffers() == []
    from fpga_gan.runtime.selftest import selftest

    assert selftest(art, n=3, backend="pynq", repeats=1).ok                # random codes on every input

    for broken, message in [({"dma": {"input": ["idma0"], "output": "odma0"}}, "dma.input lists 1, input lists 2"),
                            ({"dma": {"input": ["idma0", ""], "output": "odma0"}}, "one per input")]:
        with pytest.raises(ArtifactError, match=message):
            write_manifest(art, {**manifest, **broken})


@pytest.mark.slow     # a Verilator build of its own: `make test-all`
def test_conditional_generator_simulates_bit_exactly_with_two_streams(cond_build):
    """Verilator: two AXI-Stream sources, each with its own random idle cycles; every frame equals
    FINN's Python execution, and the sim backend gives the cpu backend's codes."""
    from fpga_gan.runtime import Accelerator
    from fpga_gan.sim.rtl import RtlDesign
    from fpga_gan.sim.run import simulate

    _, _, result = cond_build
    build = result.build_dir
    report = simulate(build, frames=2, backpressure=0.3, log=_quiet)
    assert report["frames"] == 4 and report["mismatches"] == 0
    design = RtlDesign.load(build / "rtl")
    assert [(s["port"], s["shape"]) for s in design.streams_in] == [("s_axis_0", [1, SIZE, SIZE, 3]),
                                                                    ("s_axis_1", [1, 1, 1, LABELS])]
    top = (build / "rtl" / "fpga_gan_accelerator.sv").read_text()
    assert "s_axis_0_tvalid" in top and "s_axis_1_tready" in top and "s_axis_tdata" not in top
    img, label = _inputs(2, seed=3)
    with Accelerator.open(build, backend="cpu") as cpu, Accelerator.open(build, backend="sim") as sim:
        assert np.array_equal(sim.run((img, label)), cpu.run((img, label)))


def test_every_graph_input_needs_its_quantizer(cond_build, tmp_path):
    """A second input without an input quantizer is refused with the input and what it feeds."""
    from qonnx.util.cleanup import cleanup_model

    from fpga_gan.compiler.errors import CompileError
    from fpga_gan.compiler.pipeline import CompileConfig, compile_model

    _, path, _ = cond_build
    model = cleanup_model(ModelWrapper(str(path)))
    assert [c.input for c in all_input_codes(model)] == ["global_in", "global_in_1"]
    assert all_input_codes(model)[1].datatype == DataType["UINT8"]
    quant = model.find_consumer(model.find_consumer("global_in_1").output[0])     # Mul -> Quant
    model.find_consumer(quant.output[0]).input[0] = quant.input[0]                # bypass the label's Quant
    model.graph.node.remove(quant)
    bad = tmp_path / "unquantized.onnx"
    model.save(str(bad))
    with pytest.raises(CompileError, match=r"Mul '[^']+' feeds Unsqueeze '[^']+' before its input Quant"):
        compile_model(CompileConfig(model=str(bad), board="kv260", out_dir=tmp_path / "b", log=_quiet))
