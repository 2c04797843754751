"""fpga_gan.ops: golden models against independent references, qonnx integration, and the RTL
wrappers that generate_hdl writes (Verilator lint, elaboration-time parameter checks)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from fpga_gan.ops import DOMAIN, DepthToSpace, registered_ops, rtl_dir
from fpga_gan.ops.lint import WRAPPER_CASES, generate_wrapper, lint
from fpga_gan.ops.lint import main as lint_main

FPGAPART = "xc7z020clg400-1"


def _model(op_type, in_shapes, out_shapes, dtype, **attrs) -> ModelWrapper:
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, s) for i, s in enumerate(in_shapes)]
    outs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, s) for i, s in enumerate(out_shapes)]
    node = helper.make_node(op_type, [t.name for t in ins], [t.name for t in outs], domain=DOMAIN,
                            backend="fpgadataflow", inputDataType=dtype, name=f"{op_type}_0", **attrs)
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", ins, outs)))
    for t in ins:
        model.set_tensor_datatype(t.name, DataType[dtype])
    return model


def _rand(shape, dtype, rng):
    dt = DataType[dtype]
    if dtype == "BIPOLAR":
        return rng.choice([-1.0, 1.0], size=shape).astype(np.float32)
    return rng.integers(int(dt.min()), int(dt.max()) + 1, size=shape).astype(np.float32)


def _run(model, inputs):
    ctx = execute_onnx(model, {f"x{i}": x for i, x in enumerate(inputs)}, return_full_exec_context=False)
    return [ctx[o.name] for o in model.graph.output]


def _onnx_depth_to_space(x_nhwc: np.ndarray, block: int, mode: str) -> np.ndarray:
    """Independent reference: ONNX's DepthToSpace(mode) on NCHW (onnx.reference), back to NHWC."""
    from onnx.reference import ReferenceEvaluator

    x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=block, mode=mode)
    graph = helper.make_graph([node], "d2s", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    y = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])).run(
        None, {"x": x})[0]
    return y.transpose(0, 2, 3, 1)


# ------------------------------------------------------------------------------ golden models

D2S_CASES = [  # (H, W, C, b, dtype)
    (1, 1, 1, 2, "INT4"),
    (3, 4, 2, 2, "UINT8"),
    (2, 5, 3, 3, "INT2"),
    (4, 3, 5, 2, "BIPOLAR"),
    (2, 2, 4, 1, "UINT3"),
]


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("op_type", ["DepthToSpace", "DepthToSpace_rtl"])
@pytest.mark.parametrize("h,w,c,b,dtype", D2S_CASES)
def test_depth_to_space_matches_onnx(op_type, h, w, c, b, dtype, mode):
    rng = np.random.default_rng(h * 100 + w * 10 + c + b)
    model = _model(op_type, [(1, h, w, c * b * b)], [(1, h * b, w * b, c)], dtype,
                   ImgDim=[h, w], NumChannels=c, BlockSize=b, Mode=mode)
    model = model.transform(InferShapes()).transform(InferDataTypes())
    assert model.get_tensor_shape("y0") == [1, h * b, w * b, c]
    assert model.get_tensor_datatype("y0") == DataType[dtype]
    x = _rand((1, h, w, c * b * b), dtype, rng)
    (y,) = _run(model, [x])
    np.testing.assert_array_equal(y, _onnx_depth_to_space(x, b, mode))


def test_depth_to_space_channel_order_is_crd():
    """The documented formula: out[h*b+qh, w*b+qw, c] = in[h, w, c*b*b + qh*b + qw]."""
    b, c = 2, 3
    x = np.arange(2 * 2 * c * b * b, dtype=np.float32).reshape(1, 2, 2, c * b * b)
    (y,) = _run(_model("DepthToSpace", [x.shape], [(1, 4, 4, c)], "UINT8", ImgDim=[2, 2], NumChannels=c,
                       BlockSize=b), [x])
    for h in range(2):
        for w in range(2):
            for qh in range(b):
                for qw in range(b):
                    for ch in range(c):
                        assert y[0, h * b + qh, w * b + qw, ch] == x[0, h, w, ch * b * b + qh * b + qw]


def test_depth_to_space_rejects_unknown_mode():
    model = _model("DepthToSpace", [(1, 1, 1, 4)], [(1, 2, 2, 1)], "UINT8", ImgDim=[1, 1], NumChannels=1,
                   BlockSize=2, Mode="RCD")
    with pytest.raises(Exception, match="RCD"):
        _run(model, [np.zeros((1, 1, 1, 4), np.float32)])


UPS_CASES = [  # (H, W, C, f, SIMD, dtype)
    (1, 1, 1, 2, 1, "INT4"),
    (3, 4, 6, 2, 3, "UINT8"),
    (2, 3, 4, 3, 4, "INT8"),
    (2, 2, 2, 1, 2, "BIPOLAR"),
]


@pytest.mark.parametrize("op_type", ["UpsampleNearest", "UpsampleNearest_rtl"])
@pytest.mark.parametrize("h,w,c,f,simd,dtype", UPS_CASES)
def test_upsample_nearest_matches_reference(op_type, h, w, c, f, simd, dtype):
    rng = np.random.default_rng(7 + h + w + c + f)
    model = _model(op_type, [(1, h, w, c)], [(1, h * f, w * f, c)], dtype, ImgDim=[h, w], NumChannels=c,
                   Factor=f, SIMD=simd)
    model = model.transform(InferShapes()).transform(InferDataTypes())
    x = _rand((1, h, w, c), dtype, rng)
    (y,) = _run(model, [x])
    ref = x[:, np.arange(h * f) // f][:, :, np.arange(w * f) // f]   # out[i, j] = in[i // f, j // f]
    np.testing.assert_array_equal(y, ref)
    op = getCustomOp(model.graph.node[0])
    assert op.get_folded_output_shape() == (1, h * f, w * f, c // simd, simd)
    assert op.get_exp_cycles() >= h * f * w * f * c // simd


@pytest.mark.parametrize("op_type", ["DuplicateStreams", "DuplicateStreams_rtl"])
@pytest.mark.parametrize("n,c,pe,dtype", [(2, 4, 2, "INT4"), (3, 3, 1, "UINT8"), (2, 1, 1, "BIPOLAR")])
def test_duplicate_streams(op_type, n, c, pe, dtype):
    rng = np.random.default_rng(n * 10 + c)
    model = _model(op_type, [(1, 3, 2, c)], [(1, 3, 2, c)] * n, dtype, ImgDim=[3, 2], NumChannels=c, PE=pe,
                   NumOutputStreams=n)
    model = model.transform(InferShapes()).transform(InferDataTypes())
    assert all(model.get_tensor_datatype(f"y{i}") == DataType[dtype] for i in range(n))
    x = _rand((1, 3, 2, c), dtype, rng)
    ys = _run(model, [x])
    assert len(ys) == n
    for y in ys:
        np.testing.assert_array_equal(y, x)
    op = getCustomOp(model.graph.node[0])
    assert op.get_number_output_values() == {f"out{i}": 3 * 2 * c // pe for i in range(n)}


@pytest.mark.parametrize("op_type", ["StreamingConcat", "StreamingConcat_rtl"])
@pytest.mark.parametrize("chs,simd,dtype", [([2, 3], 1, "INT4"), ([4, 2, 6], 2, "UINT8"), ([1, 1], 1, "BIPOLAR")])
def test_streaming_concat(op_type, chs, simd, dtype):
    rng = np.random.default_rng(sum(chs))
    model = _model(op_type, [(1, 2, 3, c) for c in chs], [(1, 2, 3, sum(chs))], dtype, ImgDim=[2, 3],
                   ChannelsPerStream=chs, SIMD=simd)
    model = model.transform(InferShapes()).transform(InferDataTypes())
    assert model.get_tensor_shape("y0") == [1, 2, 3, sum(chs)]
    xs = [_rand((1, 2, 3, c), dtype, rng) for c in chs]
    (y,) = _run(model, xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=-1))
    op = getCustomOp(model.graph.node[0])
    assert op.get_exp_cycles() == 2 * 3 * sum(chs) // simd


def test_concat_rejects_mixed_datatypes():
    model = _model("StreamingConcat", [(1, 1, 1, 2), (1, 1, 1, 2)], [(1, 1, 1, 4)], "INT4", ImgDim=[1, 1],
                   ChannelsPerStream=[2, 2])
    model.set_tensor_datatype("x1", DataType["INT8"])
    with pytest.raises(ValueError, match="share one datatype"):
        model.transform(InferDataTypes())


@pytest.mark.parametrize("op_type,attrs,needle", [
    ("DepthToSpace", {"ImgDim": [2, 2], "NumChannels": 2, "BlockSize": 0}, "BlockSize"),
    ("UpsampleNearest", {"ImgDim": [2, 2], "NumChannels": 6, "Factor": 2, "SIMD": 4}, "SIMD"),
    ("StreamingConcat", {"ImgDim": [2, 2], "ChannelsPerStream": [2, 3], "SIMD": 2}, "SIMD"),
])
def test_verify_node_reports_bad_attributes(op_type, attrs, needle):
    n_in = len(attrs.get("ChannelsPerStream", [0]))
    model = _model(op_type, [(1, 2, 2, 1)] * n_in, [(1, 2, 2, 1)], "INT4", **attrs)
    messages = getCustomOp(model.graph.node[0]).verify_node()
    assert any(m.startswith("ERROR") and needle in m for m in messages), messages


def test_resource_and_cycle_models():
    """Row buffers: LUTRAM when small, BRAM18 when large; cycles cover all beats plus one row."""
    small = getCustomOp(_model("DepthToSpace", [(1, 2, 2, 4)], [(1, 4, 4, 1)], "UINT8", ImgDim=[2, 2],
                               NumChannels=1, BlockSize=2).graph.node[0])
    assert small.bram_estimation(FPGAPART) == 0 and small.lut_estimation(FPGAPART) > 0
    big = getCustomOp(_model("DepthToSpace", [(1, 32, 32, 256)], [(1, 64, 64, 64)], "UINT8", ImgDim=[32, 32],
                             NumChannels=64, BlockSize=2).graph.node[0])
    # 2 rows x 32 x 256 elements x 8 bit = 131072 bits -> 8 x (2048 x 9) BRAM18
    assert big.bram_estimation(FPGAPART) == 8
    assert big.get_exp_cycles() == 32 * 32 * 256 + 32 * 256
    assert big.node_res_estimation(FPGAPART)["DSP"] == 0


# ------------------------------------------------------------------------------ RTL

def _lint(files: list[Path], top: str, *extra: str) -> subprocess.CompletedProcess:
    return lint(files, top, *extra)


def test_make_lint_passes():
    """`make lint`: every core, generated wrapper and simulation stand-in lints clean."""
    assert lint_main([]) == 0


@pytest.mark.parametrize("case", WRAPPER_CASES, ids=[c.name for c in WRAPPER_CASES])
def test_generate_hdl_lints_clean(tmp_path, case):
    op = generate_wrapper(case, tmp_path / case.name)
    files = op.get_rtl_file_list(abspath=True)
    assert all(Path(f).is_file() for f in files)
    top = op.get_nodeattr("gen_top_module")
    text = Path(files[-1]).read_text()
    assert f"module {top} (" in text and "$" not in text.replace("$fatal", "")
    # every stream interface FINN expects exists, padded to whole bytes
    intf = op.get_verilog_top_module_intf_names()
    for ifname, width in intf["s_axis"] + intf["m_axis"]:
        assert f"[{width - 1}:0] {ifname}_TDATA" in text, ifname
    res = _lint(files, top)
    assert res.returncode == 0, res.stdout + res.stderr
    assert any(cmd.startswith("create_bd_cell") for cmd in op.code_generation_ipi())


def test_finn_crop_rtl_used_for_the_subpixel_crop_lints_clean(tmp_path):
    """The sub-pixel crop is FINN's own Crop_rtl (finn-rtllib crop.sv), not an op of ours; check
    that what the compiler emits for it elaborates under our Verilator like our own layers."""
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()                  # FINN finds finn-rtllib through its settings
    ins = [helper.make_tensor_value_info("x0", TensorProto.FLOAT, (1, 6, 8, 3))]
    outs = [helper.make_tensor_value_info("y0", TensorProto.FLOAT, (1, 4, 6, 3))]
    node = helper.make_node("Crop_rtl", ["x0"], ["y0"], domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", name="Crop_rtl_0", DataType="UINT4", SIMD=1, ImgDim=[6, 8],
                            NumChannels=3, CropNorth=1, CropSouth=1, CropWest=1, CropEast=1,
                            numInputVectors=[1])
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", ins, outs)))
    model.set_tensor_datatype("x0", DataType["UINT4"])
    op = getCustomOp(model.graph.node[0])
    op.set_nodeattr("code_gen_dir_ipgen", str(tmp_path))
    op.generate_hdl(model, FPGAPART, 10.0)
    res = _lint([Path(f) for f in op.get_rtl_file_list(abspath=True)], op.get_nodeattr("gen_top_module"),
                "-Wno-fatal")
    assert res.returncode == 0, res.stdout + res.stderr


ILLEGAL = [
    ("depth_to_space", ["-GBLOCK=0"], "depth_to_space: BLOCK must be >= 1"),
    ("depth_to_space", ["-GDCR=2"], "depth_to_space: DCR must be 0 (CRD order) or 1 (DCR order)"),
    ("upsample_nearest", ["-GCHANNELS=6", "-GSIMD=4"], "upsample_nearest: SIMD (4) must divide CHANNELS (6)"),
    ("duplicate_streams", ["-GNUM_OUTPUTS=1"], "duplicate_streams: NUM_OUTPUTS must be >= 2"),
    ("streaming_concat", ["-GNUM_INPUTS=2", "-GCHANNELS=64'h00000003_00000002", "-GSIMD=2"],
     "streaming_concat: SIMD (2) must divide CHANNELS of input 1 (3)"),
    ("streaming_pad", ["-GIMG_H=3", "-GPAD_BOTTOM=3"], "streaming_pad: reflection needs PAD_TOP and PAD_BOTTOM < IMG_H"),
    ("streaming_pad", ["-GREFLECT=2"], "streaming_pad: REFLECT must be 0 (replicate) or 1 (reflect)"),
]


@pytest.mark.parametrize("core,params,message", ILLEGAL, ids=[f"{c[0]}-{i}" for i, c in enumerate(ILLEGAL)])
def test_illegal_parameters_fail_elaboration(core, params, message):
    res = _lint([rtl_dir() / f"{core}.sv"], core, *params)
    assert res.returncode != 0
    assert "USERFATAL" in res.stderr + res.stdout and message in res.stderr + res.stdout


def test_generate_hdl_rejects_bad_attributes(tmp_path):
    model = _model("UpsampleNearest_rtl", [(1, 2, 2, 6)], [(1, 4, 4, 6)], "INT4", ImgDim=[2, 2], NumChannels=6,
                   Factor=2, SIMD=4)
    op = getCustomOp(model.graph.node[0])
    op.set_nodeattr("code_gen_dir_ipgen", str(tmp_path))
    with pytest.raises(ValueError, match="SIMD"):
        op.generate_hdl(model, FPGAPART, 10.0)


D2S_SIM = [  # (H, W, C, b, ELEM_BITS, mode): each its own Verilator build directory
    (2, 3, 2, 2, 8, "CRD"),
    (3, 2, 3, 3, 4, "CRD"),
    (2, 3, 3, 2, 5, "DCR"),
]


@pytest.mark.parametrize("h,w,c,b,bits,mode", D2S_SIM,
                         ids=[f"h{p[0]}w{p[1]}c{p[2]}b{p[3]}e{p[4]}{p[5]}" for p in D2S_SIM])
def test_depth_to_space_rtl_cocotb(tmp_path, h, w, c, b, bits, mode):
    """The RTL core, driven by cocotbext-axi with random stalls on both sides, equals the golden model."""
    from fpga_gan.toolchain import activate_verilator

    from .rtl import run_cocotb

    activate_verilator()
    run_cocotb(
        sources=[rtl_dir() / f for f in DepthToSpace.rtl_sources()],
        toplevel="depth_to_space",
        test_module="tb_depth_to_space",
        parameters={"ELEM_BITS": bits, "IMG_W": w, "CHANNELS": c, "BLOCK": b, "DCR": int(mode == "DCR")},
        build_dir=tmp_path / f"h{h}w{w}c{c}b{b}e{bits}{mode}",
        extra_env={"IMG_H": str(h), "IMG_W": str(w), "CHANNELS": str(c), "BLOCK": str(b),
                   "ELEM_BITS": str(bits), "NUM_IMAGES": "2", "TB_SEED": str(h * 10 + b), "D2S_MODE": mode},
    )


# ------------------------------------------------------------------------------ cocotb: stream ops
# The golden data is computed here (the simulator process would spend ~8 s importing FINN/torch)
# and handed to the testbench as an .npz file (TB_DATA): element streams as unsigned bit patterns.

def _bit_patterns(a, dtype: str) -> np.ndarray:
    """Flattened two's-complement bit patterns of the elements of ``a`` (the wire format)."""
    assert dtype != "BIPOLAR", "BIPOLAR encodes -1/+1 as 0/1; not an integer bit pattern"
    mask = (1 << DataType[dtype].bitwidth()) - 1
    return np.asarray(a).astype(np.int64).reshape(-1) & mask


def _op_of_core(core: str):
    """The registered op whose RTL core is ``hw/rtl/<core>.sv``."""
    return next(op for op in registered_ops() if op.RTL_CORE == f"{core}.sv")


def _run_stream_tb(tmp_path, name, core, test_module, parameters, arrays, env):
    from fpga_gan.toolchain import activate_verilator

    from .rtl import run_cocotb

    activate_verilator()
    build_dir = tmp_path / name
    build_dir.mkdir(parents=True)
    data = build_dir / "golden.npz"
    np.savez(data, **arrays)
    run_cocotb(sources=[rtl_dir() / f for f in _op_of_core(core).rtl_sources()], toplevel=core, test_module=test_module, parameters=parameters,
               build_dir=build_dir, extra_env={"TB_DATA": str(data), **{k: str(v) for k, v in env.items()}})


UPS_SIM = [  # (H, W, C, f, SIMD, dtype, images)
    (4, 3, 4, 2, 2, "INT4", 2),
    (3, 5, 3, 3, 1, "UINT8", 2),
]


@pytest.mark.parametrize("h,w,c,f,simd,dtype,images", UPS_SIM,
                         ids=[f"h{p[0]}w{p[1]}c{p[2]}f{p[3]}s{p[4]}{p[5]}" for p in UPS_SIM])
def test_upsample_nearest_rtl_cocotb(tmp_path, h, w, c, f, simd, dtype, images):
    """hw/rtl/upsample_nearest.sv under random input idles and output backpressure equals the golden model."""
    from fpga_gan.ops import upsample_nearest_nhwc

    rng = np.random.default_rng(100 + h * 10 + w + f)
    xs = [_rand((1, h, w, c), dtype, rng) for _ in range(images)]   # images back to back, no tlast
    ys = [upsample_nearest_nhwc(x, f) for x in xs]
    bits = DataType[dtype].bitwidth()
    _run_stream_tb(tmp_path, f"ups_h{h}w{w}c{c}f{f}s{simd}{dtype}", "upsample_nearest", "tb_one_stream",
                   {"ELEM_BITS": bits, "SIMD": simd, "IMG_W": w, "CHANNELS": c, "FACTOR": f},
                   {"x": _bit_patterns(np.concatenate(xs), dtype), "y": _bit_patterns(np.concatenate(ys), dtype)},
                   {"ELEM_BITS": bits, "SIMD": simd, "TB_SEED": h * 10 + f})


DUP_SIM = [  # (H, W, C, PE, NumOutputStreams, dtype)
    (8, 8, 4, 2, 2, "INT4"),
    (5, 4, 5, 1, 3, "INT3"),
]


@pytest.mark.parametrize("h,w,c,pe,n,dtype", DUP_SIM,
                         ids=[f"h{p[0]}w{p[1]}c{p[2]}pe{p[3]}n{p[4]}{p[5]}" for p in DUP_SIM])
def test_duplicate_streams_rtl_cocotb(tmp_path, h, w, c, pe, n, dtype):
    """hw/rtl/duplicate_streams.sv, every output stalling independently, equals the op's golden model."""
    rng = np.random.default_rng(200 + n * 10 + c)
    model = _model("DuplicateStreams", [(1, h, w, c)], [(1, h, w, c)] * n, dtype, ImgDim=[h, w], NumChannels=c,
                   PE=pe, NumOutputStreams=n)
    x = _rand((1, h, w, c), dtype, rng)
    ys = _run(model, [x])
    assert len(ys) == n
    bits = DataType[dtype].bitwidth()
    arrays = {"x": _bit_patterns(x, dtype), **{f"y{i}": _bit_patterns(y, dtype) for i, y in enumerate(ys)}}
    _run_stream_tb(tmp_path, f"dup_h{h}w{w}c{c}pe{pe}n{n}{dtype}", "duplicate_streams", "tb_duplicate_streams",
                   {"DATA_WIDTH": pe * bits, "NUM_OUTPUTS": n}, arrays,
                   {"ELEM_BITS": bits, "PE": pe, "NUM_OUTPUTS": n, "TB_SEED": n * 10 + c})


CAT_SIM = [  # (H, W, ChannelsPerStream, SIMD, dtype)
    (6, 6, [2, 3], 1, "INT4"),
    (4, 5, [4, 2, 6], 2, "UINT8"),
]


@pytest.mark.parametrize("h,w,chs,simd,dtype", CAT_SIM,
                         ids=[f"h{p[0]}w{p[1]}c{'-'.join(map(str, p[2]))}s{p[3]}{p[4]}" for p in CAT_SIM])
def test_streaming_concat_rtl_cocotb(tmp_path, h, w, chs, simd, dtype):
    """hw/rtl/streaming_concat.sv, every input idling independently, equals the op's golden model."""
    rng = np.random.default_rng(300 + sum(chs))
    model = _model("StreamingConcat", [(1, h, w, c) for c in chs], [(1, h, w, sum(chs))], dtype, ImgDim=[h, w],
                   ChannelsPerStream=chs, SIMD=simd)
    xs = [_rand((1, h, w, c), dtype, rng) for c in chs]
    (y,) = _run(model, xs)
    bits = DataType[dtype].bitwidth()
    packed = "{}'h{}".format(32 * len(chs), "_".join(f"{c:08x}" for c in reversed(chs)))   # input 0 lowest
    arrays = {"y": _bit_patterns(y, dtype), **{f"x{i}": _bit_patterns(x, dtype) for i, x in enumerate(xs)}}
    _run_stream_tb(tmp_path, f"cat_h{h}w{w}c{'-'.join(map(str, chs))}s{simd}{dtype}", "streaming_concat",
                   "tb_streaming_concat",
                   {"ELEM_BITS": bits, "SIMD": simd, "NUM_INPUTS": len(chs), "CHANNELS": packed}, arrays,
                   {"ELEM_BITS": bits, "SIMD": simd, "NUM_INPUTS": len(chs), "TB_SEED": sum(chs)})


# ------------------------------------------------------------------------------ StreamingPad

def _onnx_pad(x_nhwc: np.ndarray, padding, onnx_mode: str) -> np.ndarray:
    """Independent reference: ONNX's Pad(mode) on NCHW (onnx.reference), back to NHWC."""
    from onnx.reference import ReferenceEvaluator

    top, left, bottom, right = padding
    x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=onnx_mode)
    graph = helper.make_graph([node], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, top, left, 0, 0, bottom, right])])
    y = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])).run(
        None, {"x": x})[0]
    return y.transpose(0, 2, 3, 1)


PAD_CASES = [  # (H, W, C, [top, left, bottom, right], SIMD, dtype)
    (4, 5, 2, [1, 1, 1, 1], 1, "INT4"),
    (7, 7, 3, [3, 3, 3, 3], 3, "UINT8"),
    (3, 4, 4, [2, 0, 1, 3], 2, "INT3"),
    (1, 1, 2, [0, 0, 0, 0], 2, "BIPOLAR"),
]


@pytest.mark.parametrize("mode,onnx_mode", [("reflect", "reflect"), ("replicate", "edge")])
@pytest.mark.parametrize("op_type", ["StreamingPad", "StreamingPad_rtl"])
@pytest.mark.parametrize("h,w,c,pads,simd,dtype", PAD_CASES)
def test_streaming_pad_matches_onnx_and_numpy(op_type, h, w, c, pads, simd, dtype, mode, onnx_mode):
    from fpga_gan.ops.pad import pad_nhwc

    rng = np.random.default_rng(h * 100 + w * 10 + sum(pads))
    top, left, bottom, right = pads
    out = (1, h + top + bottom, w + left + right, c)
    model = _model(op_type, [(1, h, w, c)], [out], dtype, ImgDim=[h, w], NumChannels=c, Padding=pads, SIMD=simd,
                   Mode=mode)
    model = model.transform(InferShapes()).transform(InferDataTypes())
    assert model.get_tensor_shape("y0") == list(out) and model.get_tensor_datatype("y0") == DataType[dtype]
    x = _rand((1, h, w, c), dtype, rng)
    (y,) = _run(model, [x])
    np.testing.assert_array_equal(y, _onnx_pad(x, pads, onnx_mode))
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)),
                                            mode="reflect" if mode == "reflect" else "edge"))
    np.testing.assert_array_equal(y, pad_nhwc(x, pads, mode))
    op = getCustomOp(model.graph.node[0])
    assert op.get_folded_output_shape() == (*out[:3], c // simd, simd)
    assert op.get_exp_cycles() >= out[1] * out[2] * c // simd


def test_streaming_pad_rejects_reflection_wider_than_the_image():
    model = _model("StreamingPad", [(1, 3, 3, 1)], [(1, 9, 3, 1)], "INT4", ImgDim=[3, 3], NumChannels=1,
                   Padding=[3, 0, 3, 0], Mode="reflect")
    messages = getCustomOp(model.graph.node[0]).verify_node()
    assert any(m.startswith("ERROR") and "reflection padding" in m and "replicate" in m for m in messages), messages
    ok = _model("StreamingPad", [(1, 3, 3, 1)], [(1, 9, 3, 1)], "INT4", ImgDim=[3, 3], NumChannels=1,
                Padding=[3, 0, 3, 0], Mode="replicate")
    assert not any(m.startswith("ERROR") for m in getCustomOp(ok.graph.node[0]).verify_node())


def test_streaming_pad_line_buffer_and_estimates():
    """Reflection holds max(top, bottom) + 2 rows, replication 2; the first output row waits for
    top + 1 input rows (reflection) or one."""
    from fpga_gan.ops.pad import line_buffer_rows

    assert line_buffer_rows([3, 3, 3, 3], "reflect") == 5 and line_buffer_rows([3, 3, 1, 3], "replicate") == 2
    attrs = dict(ImgDim=[256, 256], NumChannels=3, Padding=[3, 3, 3, 3], SIMD=3)
    big = getCustomOp(_model("StreamingPad", [(1, 256, 256, 3)], [(1, 262, 262, 3)], "UINT8", Mode="reflect",
                             **attrs).graph.node[0])
    assert big.get_exp_cycles() == 262 * 262 + 4 * 256
    # 5 rows x 256 words of 24 bit: 1280 x 24 -> 3 x (512 x 36) BRAM18
    assert big.bram_estimation(FPGAPART) == 3 and big.node_res_estimation(FPGAPART)["DSP"] == 0


PAD_SIM = [  # (H, W, C, [top, left, bottom, right], SIMD, mode, dtype, images)
    (5, 4, 2, [2, 1, 1, 3], 1, "reflect", "INT4", 3),
    (4, 6, 4, [3, 3, 3, 3], 2, "reflect", "UINT8", 2),
    (3, 3, 3, [2, 0, 3, 2], 3, "replicate", "INT5", 3),
    (2, 2, 1, [0, 1, 0, 0], 1, "reflect", "UINT3", 3),
]


@pytest.mark.parametrize("h,w,c,pads,simd,mode,dtype,images", PAD_SIM,
                         ids=[f"h{p[0]}w{p[1]}c{p[2]}p{''.join(map(str, p[3]))}s{p[4]}{p[5]}" for p in PAD_SIM])
def test_streaming_pad_rtl_cocotb(tmp_path, h, w, c, pads, simd, mode, dtype, images):
    """hw/rtl/streaming_pad.sv, images back to back under random input idles and output
    backpressure, equals the golden model."""
    from fpga_gan.ops.pad import pad_nhwc

    rng = np.random.default_rng(400 + h * 10 + w + sum(pads))
    xs = [_rand((1, h, w, c), dtype, rng) for _ in range(images)]
    ys = [pad_nhwc(x, pads, mode) for x in xs]
    bits = DataType[dtype].bitwidth()
    top, left, bottom, right = pads
    _run_stream_tb(tmp_path, f"pad_h{h}w{w}c{c}p{''.join(map(str, pads))}s{simd}{mode}", "streaming_pad",
                   "tb_one_stream",
                   {"ELEM_BITS": bits, "SIMD": simd, "IMG_H": h, "IMG_W": w, "CHANNELS": c, "PAD_TOP": top,
                    "PAD_LEFT": left, "PAD_BOTTOM": bottom, "PAD_RIGHT": right, "REFLECT": int(mode == "reflect")},
                   {"x": _bit_patterns(np.concatenate(xs), dtype), "y": _bit_patterns(np.concatenate(ys), dtype)},
                   {"ELEM_BITS": bits, "SIMD": simd, "TB_SEED": h * 10 + sum(pads)})


# ------------------------------------------------------------------------------ registry

def test_op_facts_are_found_through_the_class_hierarchy():
    """Facts declared on a backend-neutral class (ours or FINN's) hold for its RTL backend; a
    layer with no declaration gets the neutral facts; conflicting declarations are refused."""
    from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
    from finn.custom_op.fpgadataflow.rtl import ElementwiseAdd_rtl, MVAU_rtl, StreamingFIFO_rtl, Thresholding_rtl
    from finn.custom_op.fpgadataflow.rtl.crop_rtl import Crop_rtl

    from fpga_gan.ops import custom_op
    from fpga_gan.ops.registry import COMPUTE, FORK, GATHER, JOIN, PASS, OpFacts, declare_facts, facts_of

    assert facts_of(custom_op["StreamingConcat_rtl"]).stream_role == JOIN
    assert facts_of(custom_op["StreamingConcat_rtl"]).phase_role == GATHER
    assert facts_of(custom_op["DuplicateStreams"]).stream_role == FORK
    assert facts_of(MVAU_rtl).phase_role == COMPUTE and facts_of(StreamingFIFO_rtl).sized_fifo
    assert facts_of(Crop_rtl) == OpFacts()
    add = facts_of(ElementwiseAdd_rtl)        # FINN's add: its folding and LUTs are ours to give
    assert add.stream_role == JOIN and add.fold is not None and add.lut_estimate is not None
    assert facts_of(Thresholding_rtl).stream_role == PASS and facts_of(MVAU_rtl).fold is None
    with pytest.raises(RuntimeError, match="declared twice"):
        declare_facts(MVAU, OpFacts(stream_role=JOIN))
    with pytest.raises(ValueError, match="stream_role"):
        OpFacts(stream_role="merge")


def test_every_registered_op_is_complete():
    """What registration promises for each op: both classes resolvable in our domain and FINN's
    RTL domain, a core in hw/rtl, and at least one lint case."""
    import finn.custom_op.fpgadataflow.rtl as finn_rtl

    from fpga_gan.ops import custom_op

    assert registered_ops()
    for op in registered_ops():
        rtl = custom_op[f"{op.__name__}_rtl"]
        assert custom_op[op.__name__] is op and finn_rtl.custom_op[rtl.__name__] is rtl
        assert all((rtl_dir() / f).is_file() for f in op.rtl_sources()), op.__name__
        assert op.LINT_CASES, op.__name__


# ------------------------------------------------------------------------------ StreamingPad end to end

def _export_pad_net(path: Path, mode: str, size: int) -> Path:
    """QuantIdentity -> ReflectionPad2d(3) (or ReplicationPad2d) -> QuantConv2d(k7, padding=0) ->
    QuantReLU -> pad(1) -> QuantConv2d(k3): the CycleGAN stem and a padded hidden layer."""
    import torch
    import torch.nn as nn
    from brevitas import nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import Int8ActPerTensorFixedPoint

    pad = nn.ReflectionPad2d if mode == "reflect" else nn.ReplicationPad2d

    class PadNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.pad1, self.pad2 = pad(3), pad(1)
            self.conv1 = qnn.QuantConv2d(3, 8, 7, padding=0, weight_bit_width=4, bias=False,
                                         return_quant_tensor=True)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.conv2 = qnn.QuantConv2d(8, 3, 3, padding=0, weight_bit_width=4, bias=False,
                                         return_quant_tensor=True)
            self.out = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)

        def forward(self, x):
            return self.out(self.conv2(self.pad2(self.relu(self.conv1(self.pad1(self.inp(x)))))))

    torch.manual_seed(0)
    export_qonnx(PadNet().eval(), torch.rand(1, 3, size, size), export_path=str(path), dynamo=False)
    return path


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_reflection_padded_net_compiles_bit_exactly_to_streaming_pads(tmp_path, mode):
    """Every stage bit-exact, every node RTL in one partition, each ONNX Pad its own StreamingPad
    layer (not absorbed into the convolution as zero padding)."""
    from fpga_gan.compiler.pipeline import CompileConfig, compile_model

    from .test_compiler import _assert_all_rtl_one_partition

    path = _export_pad_net(tmp_path / "padnet.onnx", mode, 10)
    result = compile_model(CompileConfig(model=str(path), board="kv260", out_dir=tmp_path / "build",
                                         log=lambda _: None))
    _assert_all_rtl_one_partition(result)
    ops = [n["op_type"] for n in result.report["nodes"]]
    assert ops.count("StreamingPad_rtl") == 2 and "FMPadding_rtl" not in ops
    from .test_compiler import _child_nodes

    _, _, child = _child_nodes(result.build_dir)
    pads = [getCustomOp(n) for n in child.graph.node if n.op_type == "StreamingPad_rtl"]
    assert [p.get_nodeattr("Padding") for p in pads] == [[3, 3, 3, 3], [1, 1, 1, 1]]
    assert {p.get_nodeattr("Mode") for p in pads} == {mode}


@pytest.mark.slow
def test_reflection_padded_net_simulates_bit_exactly_in_verilator(tmp_path):
    """The compiled reflect-padded net in Verilator (FIFOs sized, random backpressure) equals
    FINN's execution of its golden layers frame for frame."""
    from fpga_gan.compiler.pipeline import CompileConfig, compile_model
    from fpga_gan.sim.run import simulate

    path = _export_pad_net(tmp_path / "padnet.onnx", "reflect", 8)
    compile_model(CompileConfig(model=str(path), board="kv260", out_dir=tmp_path / "build", log=lambda _: None))
    report = simulate(tmp_path / "build", frames=2, backpressure=0.3, log=lambda _: None)
    assert report["frames"] == 4 and report["mismatches"] == 0          # 2 at full rate + 2 under backpressure
    assert 0.5 < report["cycles_vs_estimate"] < 2.0


def test_a_lone_nearest_upsample_becomes_the_upsample_layer(tmp_path):
    """A nearest upsample not followed by a convolution (here at the generator's end) is the
    streaming UpsampleNearest layer, bit-exact through every stage, in the one RTL partition."""
    import torch
    import torch.nn as nn
    from brevitas import nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import Int8ActPerTensorFixedPoint

    from fpga_gan.compiler.pipeline import CompileConfig, compile_model

    from .test_compiler import _assert_all_rtl_one_partition

    class UpNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.conv = qnn.QuantConv2d(3, 4, 3, padding=1, weight_bit_width=4, bias=False,
                                        return_quant_tensor=True)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.out = qnn.QuantReLU(bit_width=4)

        def forward(self, x):
            return self.out(self.up(self.relu(self.conv(self.inp(x)))))

    torch.manual_seed(0)
    export_qonnx(UpNet().eval(), torch.rand(1, 3, 6, 6), export_path=str(tmp_path / "up.onnx"), dynamo=False)
    result = compile_model(CompileConfig(model=str(tmp_path / "up.onnx"), board="kv260", out_dir=tmp_path / "build",
                                         log=lambda _: None))
    _assert_all_rtl_one_partition(result)
    assert [n["op_type"] for n in result.report["nodes"]][-1] == "UpsampleNearest_rtl"
