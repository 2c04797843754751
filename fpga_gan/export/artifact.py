"""The artifact directory format (``model.json`` + QONNX + QCDQ), written from a QONNX file alone.

Two ways lead to an artifact: exporting a Brevitas module (:mod:`.exporter`, which knows the
quantizers as torch objects) and taking a QONNX file a user exported elsewhere (this module,
which reads the same facts from the graph's first and last ``Quant`` nodes). The compiler takes
either; the board artifact needs ``model.json`` and the CPU graph in both cases. No torch here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .._files import UnsafePathError, inside, write_json_atomic
from ..errors import UserError

ARTIFACT_SCHEMA_VERSION = 1
QONNX_FILE = "model.qonnx.onnx"
QCDQ_FILE = "model.qcdq.onnx"
MODEL_JSON = "model.json"


class ArtifactExportError(UserError, ValueError):
    """The QONNX graph lacks what an artifact needs (quantized input and output)."""


class OnnxFileError(ValueError):
    """A file handed to us as an ONNX model is not one, fails the ONNX checker, or reads data
    from outside its own directory."""


# ONNX files larger than this are refused before parsing: protobuf has a 2 GiB message limit and
# our generators are a few MB; external data (checked separately) is how big weights travel.
MAX_ONNX_BYTES = 1 << 31


def load_checked_onnx(path: str | Path):
    """Load an untrusted ONNX file as a ``ModelProto``, only after it passed every check.

    The graph is read without its external data first; each external data location must be a
    file inside the model's own directory (no absolute path, no ``..``, no symlink out), then
    ``onnx.checker`` checks the model (with the file path, so external data is checked too), and
    only then is the data loaded. Raises :class:`OnnxFileError` naming the file and the problem.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"ONNX file not found: {path}")
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise OnnxFileError(f"{path} is {size / 2**30:.1f} GiB, over the 2 GiB protobuf limit; store the "
                            "weights as external data beside it")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf / onnx raise several unrelated types
        raise OnnxFileError(f"{path} is not an ONNX model: {type(err).__name__}: {err}") from None
    tensors = list(proto.graph.initializer)
    tensors += [a.t for n in proto.graph.node for a in n.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        try:
            target = inside(path.parent, location, f"{path}: external data of tensor '{tensor.name}'")
        except UnsafePathError as err:
            raise OnnxFileError(str(err)) from None
        if target.is_symlink() or not target.is_file():
            raise OnnxFileError(f"{path}: external data of tensor '{tensor.name}' must be a regular file "
                                f"beside the model, {target} is {'a symlink' if target.is_symlink() else 'missing'}")
    try:
        proto = onnx.load(str(path))
        checked = type(proto)()
        checked.CopyFrom(proto)
        # qonnx's own graph builders leave custom domains (Quant, MultiThreshold) without an opset
        # import; qonnx resolves them by domain, so declare them for the checker only
        declared = {o.domain for o in checked.opset_import}
        for domain in sorted({n.domain for n in checked.graph.node} - declared - {""}):
            checked.opset_import.add(domain=domain, version=1)
        onnx.checker.check_model(checked)
    except Exception as err:  # noqa: BLE001 - ValidationError, protobuf DecodeError, OSError...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OnnxFileError(f"{path} fails the ONNX checker: {first}") from None
    return proto


def int_dtype(bits: int, signed: bool) -> str:
    if bits > 16:
        raise ValueError(f"{bits}-bit I/O is not supported (at most 16)")
    return ("int" if signed else "uint") + ("8" if bits <= 8 else "16")


def tensor_spec(name: str, shape, scale: float, bits: int, signed: bool, with_range: bool = False) -> dict:
    """One ``model.json`` tensor entry; inputs carry the code range the runtime validates."""
    spec = {"name": name, "shape": [None, *[int(d) for d in shape[1:]]], "layout": "NCHW",
            "dtype": int_dtype(bits, signed), "bits": bits, "signed": signed, "scale": scale, "zero_point": 0}
    if with_range:
        spec["range"] = [-(2 ** (bits - 1)) if signed else 0, 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1]
    return spec


class FoldConstantQuant:
    """Replace Quant nodes whose inputs are all constants by their (exact, dyadic) result.

    QCDQ only expresses 2..8-bit quantizers; the 16-bit bias quantizers are constant anyway, so
    ONNX Runtime gets the quantized bias values as plain initializers.
    """

    def apply(self, model):
        from qonnx.custom_op.general.quant import quant

        graph = model.graph
        for node in list(graph.node):
            if node.op_type != "Quant":
                continue
            values = [model.get_initializer(i) for i in node.input]
            if any(v is None for v in values):
                continue
            attrs = {a.name: a.i for a in node.attribute if a.name in ("signed", "narrow")}
            folded = quant(*values, signed=attrs.get("signed", 1), narrow=attrs.get("narrow", 0),
                           rounding_mode="ROUND")
            model.set_initializer(node.output[0], folded.astype(np.float32))
            graph.node.remove(node)
        return model


def _make_batch_dynamic(proto) -> None:
    """Let ONNX Runtime take any batch size: symbolic first dim, no stale intermediate shapes."""
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del proto.graph.value_info[:]


def _lowest_ir_version(proto) -> None:
    """The lowest IR version the graph's opsets allow: a QONNX file saved by a new onnx package says
    IR 13, which the board image's ONNX Runtime (1.20: IR <= 10) refuses to load."""
    from onnx.helper import find_min_ir_version_for

    proto.ir_version = min(proto.ir_version, find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True))


def write_qcdq(qonnx_model, path: Path, name: str) -> None:
    """The QCDQ form of a (cleaned) QONNX model, which ONNX Runtime runs, at ``path``."""
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ
    from qonnx.util.cleanup import cleanup_model

    from .qdq_bias import KeepOffGridBiasLayersInFloat, KeepSaturatingInt8LayersInFloat, QuantizeBiasOnAccumulatorGrid

    qcdq_model = FoldConstantQuant().apply(qonnx_model.transform(QuantToQCDQ()))
    qcdq_model = cleanup_model(qcdq_model, preserve_qnt_ops=True)
    # exact in any ONNX Runtime session, not only one that disables WeightBiasQuantization
    qcdq_model = qcdq_model.transform(QuantizeBiasOnAccumulatorGrid()).transform(KeepOffGridBiasLayersInFloat())
    qcdq_model = qcdq_model.transform(KeepSaturatingInt8LayersInFloat())    # on any x86 CPU, VNNI or not
    leftover = [n.name for n in qcdq_model.graph.node if n.op_type == "Quant"]
    if leftover:
        raise ArtifactExportError(f"{name}: Quant nodes {leftover} have no QCDQ form (bit width > 8 on a "
                                  "non-constant tensor?); ONNX Runtime could not run this model")
    _make_batch_dynamic(qcdq_model.model)
    _lowest_ir_version(qcdq_model.model)
    qcdq_model.save(str(path))


def _quant_params(model, node, where: str) -> tuple[float, int, bool]:
    """(scale, bits, signed) of a per-tensor, zero-point-free Quant node."""
    if node is None or node.op_type != "Quant":
        raise ArtifactExportError(f"the model's {where} is not quantized (a {node.op_type if node else 'missing'} "
                                  f"node, not Quant): export it with a Brevitas {where} quantizer")
    scale, zero, bits = (model.get_initializer(t) for t in node.input[1:4])
    if scale is None or zero is None or bits is None or np.size(scale) != 1 or np.any(zero != 0):
        raise ArtifactExportError(f"{where} Quant node {node.name}: needs a constant per-tensor scale and zero "
                                  "point 0 (the accelerator's streams carry plain integer codes)")
    signed = next((a.i for a in node.attribute if a.name == "signed"), 1)
    return float(np.asarray(scale).reshape(-1)[0]), int(np.asarray(bits).reshape(-1)[0]), bool(signed)


def _input_spec(model, codes, name: str) -> dict:
    """A model.json input entry: the codes' scale and zero point as the user's values see them."""
    spec = tensor_spec(name, model.get_tensor_shape(codes.input), codes.input_scale, codes.bits, codes.signed,
                       with_range=True)
    spec["zero_point"] = codes.zero_point
    return spec


def artifact_from_qonnx(qonnx_path: Path, out_dir: Path, name: str) -> dict:
    """Write ``model.json``, the QONNX copy and the QCDQ graph for a QONNX file; returns the spec."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    qonnx_path, out_dir = Path(qonnx_path), Path(out_dir)
    try:
        proto = load_checked_onnx(qonnx_path)
    except OnnxFileError as err:
        raise ArtifactExportError(str(err)) from None
    # the compiler's reading of the input quantizers (qonnx only, no FINN): one code format per graph
    # input, through any float pre-processing it absorbs, so model.json and the compiled accelerator
    # agree on what the codes mean
    from ..compiler.passes.integer_io import all_input_codes

    model = cleanup_model(ModelWrapper(proto))
    graph_out = model.graph.output[0].name
    try:
        in_codes = all_input_codes(model)
    except ValueError as err:
        raise ArtifactExportError(f"the model's input is not quantized as the accelerator needs: {err}") from err
    out_q = _quant_params(model, model.find_producer(graph_out), "output")
    out_dir.mkdir(parents=True, exist_ok=True)
    if qonnx_path.resolve() != (out_dir / QONNX_FILE).resolve():
        shutil.copyfile(qonnx_path, out_dir / QONNX_FILE)
    write_qcdq(model, out_dir / QCDQ_FILE, name)
    spec = {"schema_version": ARTIFACT_SCHEMA_VERSION, "model": name,
            "files": {"qonnx": QONNX_FILE, "qcdq": QCDQ_FILE},
            "inputs": [_input_spec(model, c, "global_in" if len(in_codes) == 1 else c.input) for c in in_codes],
            "outputs": [tensor_spec("global_out", model.get_tensor_shape(graph_out), *out_q)],
            "source_file": qonnx_path.name}
    write_json_atomic(out_dir / MODEL_JSON, spec)
    return spec
