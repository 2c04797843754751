"""``fpga-gan compile``: QONNX generator -> one partition of RTL layers, folded for a board.

Why our own pipeline: FINN's builder (``finn.builder``) imports Vivado bindings at import time, so
the Vivado-free part of the flow composes FINN's transformations here, in FINN's step order, with
fpga_gan's GAN passes slotted in. Every stage:

* saves its model as ``NN_<stage>.onnx`` in the build dir,
* executes it (FINN's Python execution; the RTL ops run their golden models) on the saved input
  and requires the output to EQUAL the saved expected output of the original QONNX model,
* is recorded in ``state.json`` with its time and verification, so a re-run resumes after the
  last finished stage whose inputs (model, board, folding settings) are unchanged.

``report.json`` / ``report.md`` / ``cycles.png`` are written last; ``state.json`` says
``"complete": true`` only after they are, so an interrupted or failed build never looks finished.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import math
import os
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .._files import mark_dir, refuse_unless_ours
from .boards import Board, budget_dict, fit_check, get_board
from .errors import CompileError, explained_failures

__all__ = ["CompileConfig", "CompileResult", "STAGES", "compile_model"]

STAGES = ("tidy", "gan_lowering", "qonnx_to_finn", "streamline", "convert_to_hw",
          "dataflow_partition", "specialize", "folding", "estimates")
# Stages after this one depend on the board and folding settings, the ones up to it only on the model.
_MODEL_ONLY_STAGES = STAGES[:STAGES.index("specialize") + 1]
# No FPGA fabric runs a streaming design faster; a larger --clock-mhz is a typo (kHz, Hz).
MAX_CLOCK_MHZ = 1000
BUILD_KIND = "build"     # the kind in a build directory's ownership marker (see fpga_gan._files)


@dataclass
class CompileConfig:
    """What to compile and for which board. ``model`` is a zoo name or a QONNX file."""

    model: str
    board: str = "pynq-z2"
    target_fps: float | None = None
    clock_mhz: float | None = None
    folding_file: Path | None = None
    out_dir: Path | None = None
    seed: int = 0
    mvau_wwidth_max: int = 1024
    log: Callable[[str], None] = field(default=print, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every value before any stage runs: a bad one raises :class:`CompileError` naming it
        (``--clock-mhz 0`` once became the board's clock silently, ``nan`` failed after nine stages)."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise CompileError("the model must be a zoo name or a QONNX .onnx file, got nothing")
        get_board(self.board)
        for option, value in (("--target-fps", self.target_fps), ("--clock-mhz", self.clock_mhz)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise CompileError(f"{option} must be a finite positive number, got {value!r}")
        if self.clock_mhz is not None and self.clock_mhz > MAX_CLOCK_MHZ:
            raise CompileError(f"--clock-mhz {self.clock_mhz:g} is beyond any FPGA fabric clock "
                               f"(at most {MAX_CLOCK_MHZ} MHz)")
        for name, value, least in (("seed", self.seed, 0), ("mvau_wwidth_max", self.mvau_wwidth_max, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise CompileError(f"{name} must be an integer >= {least}, got {value!r}")
        out = self.build_dir()
        if out.exists() and not out.is_dir():
            raise CompileError(f"build directory {out} exists and is not a directory; give --out a directory")
        if self.folding_file is not None:
            self._validate_folding_file(Path(self.folding_file))

    @staticmethod
    def _validate_folding_file(path: Path) -> None:
        """The file's JSON shape; its node names and PE / SIMD are checked against the graph at the
        folding stage (:func:`fpga_gan.compiler.folding.validate_folding`)."""
        from .folding import folding_file_problems

        if not path.is_file():
            raise CompileError(f"folding file {path} does not exist" if not path.exists()
                               else f"folding file {path} is not a file")
        try:
            config = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CompileError(f"folding file {path} is not valid JSON: {err}") from err
        problems = folding_file_problems(config)
        if problems:
            raise CompileError(f"folding file {path} is invalid:\n  " + "\n  ".join(problems))

    def model_name(self) -> str:
        path = Path(self.model)
        return path.stem.split(".")[0] if path.suffix == ".onnx" else self.model

    def build_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("build") / f"{self.model_name()}-{self.board}"


@dataclass
class CompileResult:
    build_dir: Path
    report: dict


# ------------------------------------------------------------------------------------------------
# Environment: FINN without Vivado


def _finn_environment(build_dir: Path) -> None:
    """FINN's transformations need its settings and a build dir, not Vivado (ARCHITECTURE.md)."""
    finn_dir = build_dir / "finn"
    finn_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FINN_BUILD_DIR"] = str(finn_dir.resolve())
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()


def _source_qonnx(cfg: CompileConfig) -> Path:
    path = Path(cfg.model)
    if path.suffix == ".onnx" or path.exists():
        if not path.is_file():
            raise CompileError(f"model file {path} does not exist")
        _artifact_files(path)       # a model.json beside it must name files inside its directory
        return path
    from ..artifacts import zoo_artifact
    from ..models.zoo import ZOO, ZooError

    if cfg.model not in ZOO:
        raise CompileError(f"{cfg.model!r} is neither a zoo model ({', '.join(sorted(ZOO))}) nor an .onnx file")
    try:
        return zoo_artifact(cfg.model) / "model.qonnx.onnx"
    except ZooError as err:
        raise CompileError(str(err)) from err


def _load_qonnx(path: Path):
    """Load and sanity-check the user's file: ONNX, quantized (QONNX), inputs and one output."""
    from qonnx.core.modelwrapper import ModelWrapper

    from ..export.artifact import OnnxFileError, load_checked_onnx

    try:
        proto = load_checked_onnx(path)     # checker, external data confined to the model's directory
    except OnnxFileError as err:
        raise CompileError(str(err)) from None
    ops = {n.op_type for n in proto.graph.node}
    if "Quant" not in ops:
        hint = "QCDQ (QuantizeLinear/DequantizeLinear)" if "QuantizeLinear" in ops else "float-only"
        raise CompileError(f"{path} is a {hint} ONNX model, not QONNX: export the generator with Brevitas' "
                           "export_qonnx (fpga-gan export writes model.qonnx.onnx)")
    static = {i.name for i in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in static]
    if not inputs or len(proto.graph.output) != 1:
        raise CompileError(f"{path}: the compiler takes generators with one or more inputs and one output, this "
                           f"one has {len(inputs)} inputs and {len(proto.graph.output)} outputs")
    from qonnx.util.cleanup import cleanup_model

    from .unsupported import unsupported_layers

    model = cleanup_model(ModelWrapper(proto))
    problems = unsupported_layers(model)
    if problems:
        raise CompileError(f"{path}: {len(problems)} layer(s) cannot be streamed by the RTL layers:\n  "
                           + "\n  ".join(problems))
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1                       # one frame per stream pass
    del model.graph.value_info[:]
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes())


# ------------------------------------------------------------------------------------------------
# Stages. Each takes and returns a ModelWrapper; ``ctx`` carries the config and the board.


@dataclass
class _Context:
    cfg: CompileConfig
    board: Board
    clock_mhz: float
    build_dir: Path
    notes: dict = field(default_factory=dict)


def _tidy(model, ctx: _Context):
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames, RemoveStaticGraphInputs
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from .passes.integer_io import FeedInputCodes, all_input_codes
    from .passes.tidy import FoldBiasQuant

    model = model.transform(InferShapes()).transform(FoldConstants())
    model = model.transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    model = model.transform(InferDataTypes()).transform(RemoveStaticGraphInputs())
    model = model.transform(FoldBiasQuant())
    model = model.transform(FeedInputCodes(all_input_codes(model)))
    return model.transform(InferShapes()).transform(InferDataTypes())


def _gan_lowering(model, ctx: _Context):
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from .passes.subpixel import LowerConvTransposeToSubPixel
    from .passes.tidy import AbsorbPadIntoConv
    from .passes.upsample import UpsampleConvToConvTranspose

    model = model.transform(UpsampleConvToConvTranspose())
    for node in model.graph.node:
        if node.op_type == "ConvTranspose":
            ctx.notes.setdefault("deconv", []).append(_deconv_record(model, node))
    try:
        model = model.transform(LowerConvTransposeToSubPixel(strict=True))
    except ValueError as err:
        raise CompileError(f"{err}. The RTL flow streams transposed convolutions in the zero-free sub-pixel "
                           "form, which takes any kernel, stride, padding and output_padding, but only "
                           "group=1 and dilation 1") from err
    model = model.transform(AbsorbPadIntoConv()).transform(GiveUniqueNodeNames())
    return model.transform(InferShapes()).transform(InferDataTypes())


def _qonnx_to_finn(model, ctx: _Context):
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from .passes.pixel_shuffle import MoveQuantChainAboveDepthToSpace
    from .passes.rounding import NudgeTieThresholds
    from .passes.thresholds import ExactQuantThresholds

    # a PixelShuffle behind a biased / per-channel-scaled conv: its activation chain moves in front
    model = model.transform(MoveQuantChainAboveDepthToSpace())
    model = model.transform(ExactQuantThresholds())        # before FINN moves any float arithmetic
    model = model.transform(ConvertQONNXtoFINN()).transform(NudgeTieThresholds())
    return model.transform(InferDataTypes())


def _streamline(model, ctx: _Context):
    from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from .passes.broadcast import LowerBroadcastToUpsample, MoveTransposeAboveConcat
    from .passes.streamline import StreamlineGAN

    model = model.transform(StreamlineGAN())
    # condition vectors tiled to planes (conditional generators): concat and tiling to NHWC streams
    try:
        for t in (MoveTransposeAboveConcat(), LowerBroadcastToUpsample(), AbsorbConsecutiveTransposes()):
            model = model.transform(t)
    except ValueError as err:
        raise CompileError(str(err)) from err
    return model.transform(InferDataTypes())


def _convert_to_hw(model, ctx: _Context):
    from .passes.hw import ConvertToGANHWLayers, unsupported_nodes

    model = model.transform(ConvertToGANHWLayers())
    problems = unsupported_nodes(model)
    if problems:
        raise CompileError("these nodes cannot be streamed by the RTL layers:\n  " + "\n  ".join(problems))
    return model


def _dataflow_partition(model, ctx: _Context):
    import shutil

    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from qonnx.custom_op.registry import getCustomOp

    (ctx.build_dir / PARTITION_DIR).mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ctx.build_dir) as tmp:
        parent = model.transform(CreateDataflowPartition(partition_model_dir=str(Path(tmp).resolve())))
        partitions = parent.get_nodes_by_op_type("StreamingDataflowPartition")
        if len(partitions) != 1:
            raise CompileError(f"the dataflow graph split into {len(partitions)} partitions, expected one; "
                               f"nodes outside: {[n.op_type for n in parent.graph.node]}")
        _order_partition_inputs(parent, partitions[0])
        inst = getCustomOp(partitions[0])
        relative = _partition_name("dataflow_partition")
        shutil.move(inst.get_nodeattr("model"), ctx.build_dir / relative)
        inst.set_nodeattr("model", relative)
    return parent


def _order_partition_inputs(parent, partition) -> None:
    """List the partition's input streams in the order of the graph inputs they come from.

    FINN's CreateDataflowPartition orders them as it meets them; the simulator, the runtime and
    FINN's IODMA insertion (idma0, idma1, ...) all number a multi-input accelerator's streams, and
    stream k should be graph input k. Each stream is traced back through the layout ops outside
    the partition (Transpose, Reshape) to its graph input; node inputs and the child model's graph
    inputs are permuted together (the partition op pairs them by position)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    if len(partition.input) < 2:
        return
    order = graph_inputs(parent)

    def origin(tensor: str) -> int:
        while tensor not in order:
            producer = parent.find_producer(tensor)
            if producer is None:
                return len(order)
            tensor = producer.input[0]
        return order.index(tensor)

    ranks = [origin(t) for t in partition.input]
    perm = sorted(range(len(ranks)), key=lambda k: ranks[k])
    if perm == list(range(len(perm))):
        return
    inst = getCustomOp(partition)
    child = ModelWrapper(inst.get_nodeattr("model"))
    inputs = [copy.deepcopy(child.graph.input[k]) for k in perm]
    del child.graph.input[:]
    child.graph.input.extend(inputs)
    child.save(inst.get_nodeattr("model"))
    names = [partition.input[k] for k in perm]
    del partition.input[:]
    partition.input.extend(names)


PARTITION_DIR = "partition"


def _partition_name(stage: str) -> str:
    """Where ``stage`` writes the dataflow partition, relative to the build dir: one file per stage,
    so no stage edits a file an earlier stage (or a copy of this build dir) still refers to."""
    return f"{PARTITION_DIR}/{STAGES.index(stage):02d}_{stage}.onnx"


def partition_file(parent, build_dir: Path) -> Path:
    """The dataflow partition file of ``parent`` (a stage model of ``build_dir``): its
    ``StreamingDataflowPartition`` names it relative to the build dir, so the dir can be moved."""
    from qonnx.custom_op.registry import getCustomOp

    nodes = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    if not nodes:
        raise CompileError(f"a stage model in {build_dir} has no dataflow partition")
    path = Path(getCustomOp(nodes[0]).get_nodeattr("model"))
    if path.is_absolute() or ".." in path.parts:
        raise CompileError(f"{build_dir} names its dataflow partition {path} outside itself (a build of an older "
                           "fpga_gan): run fpga-gan compile on it again")
    return Path(build_dir) / path


def _child(model, build_dir: Path):
    from qonnx.core.modelwrapper import ModelWrapper

    node = model.get_nodes_by_op_type("StreamingDataflowPartition")[0]
    return node, ModelWrapper(str(partition_file(model, build_dir)))


def _on_child(model, fn, ctx: _Context, stage: str):
    """Transform the dataflow partition's model into this stage's own partition file; return the
    parent, now naming that file (the earlier stage's parent and partition stay as they were)."""
    from qonnx.custom_op.registry import getCustomOp

    node, child = _child(model, ctx.build_dir)
    child = fn(child)
    relative = _partition_name(stage)
    child.save(str(ctx.build_dir / relative))
    getCustomOp(node).set_nodeattr("model", relative)
    return model


def _specialize(model, ctx: _Context):
    from .passes.hw import specialize_rtl, why_not_rtl

    def run(child):
        child = specialize_rtl(child, ctx.board.part)
        not_rtl = [f"{n.op_type} node {n.name!r}: {why_not_rtl(child, n, ctx.board.part)}"
                   for n in child.graph.node if not n.op_type.endswith("_rtl")]
        if not_rtl:
            raise CompileError(f"no RTL implementation on {ctx.board.name} for:\n  " + "\n  ".join(not_rtl))
        return child

    return _on_child(model, run, ctx, "specialize")


def _folding(model, ctx: _Context):
    from .folding import apply_folding

    return _on_child(model, lambda child: apply_folding(child, ctx), ctx, "folding")


def _estimates(model, ctx: _Context):
    from .estimates import node_estimates, subpixel_mvaus

    _, child = _child(model, ctx.build_dir)
    ctx.notes["nodes"] = node_estimates(child, ctx.board.part)
    ctx.notes["subpixel_mvaus"] = subpixel_mvaus(child)
    return model


_STAGE_FUNCS = {
    "tidy": _tidy, "gan_lowering": _gan_lowering, "qonnx_to_finn": _qonnx_to_finn, "streamline": _streamline,
    "convert_to_hw": _convert_to_hw, "dataflow_partition": _dataflow_partition, "specialize": _specialize,
    "folding": _folding, "estimates": _estimates,
}


def _deconv_record(model, node) -> dict:
    """What the report needs of one ConvTranspose before it is lowered: its geometry (to rebuild
    FINN's zero-insertion route) and its useful MACs; ``name`` is what the lowering's
    DepthToSpace carries as provenance (:func:`~.passes.subpixel.provenance_tag`)."""
    from .passes.subpixel import _attr, _conv_transpose_dims, macs_zero_free, macs_zero_insertion, subpixel_geometry

    hin, win, hout, wout, cin, cout, kh, kw, _ = _conv_transpose_dims(node, model)
    geo = subpixel_geometry(node, model)
    pads = [int(v) for v in _attr(node, "pads", [0, 0, 0, 0])]
    return {"name": node.name, "macs_useful": int(macs_zero_free(node, model)),
            "macs_zero_insertion_formula": int(macs_zero_insertion(node, model)), "cin": cin, "cout": cout,
            "k": kh, "kernel": [kh, kw], "s": int(_attr(node, "strides", [1, 1])[0]), "p": pads[0], "pads": pads,
            "output_padding": [int(v) for v in _attr(node, "output_padding", [0, 0])] or [0, 0],
            "h": hin, "w": win, "out": [hout, wout], "subpixel_block": geo.stride,
            "padded_kernel": list(geo.padded_kernel)}


# ------------------------------------------------------------------------------------------------
# Verification


def _golden_view(model):
    """A copy in which each FINN ``*_rtl`` layer is its backend-neutral op, whose Python
    ``execute_node`` is FINN's golden model (FINN's RTL classes execute only as simulations; the
    RTL simulation itself is checked by the sim tests). Attributes, folding included, are kept."""
    from qonnx.core.modelwrapper import ModelWrapper

    from ..ops import DOMAIN, custom_op

    view = ModelWrapper(copy.deepcopy(model.model))
    for node in view.graph.node:
        if node.domain in ("finn.custom_op.fpgadataflow.rtl", "finn.custom_op.fpgadataflow.hls"):
            node.op_type = node.op_type.rsplit("_", 1)[0]
            node.domain = DOMAIN if node.op_type in custom_op else "finn.custom_op.fpgadataflow"
    return view


def graph_inputs(model) -> list[str]:
    """The names of a model's dynamic graph inputs (initializers excluded), in graph order: the
    order in which every stage, the runtime and the simulator list a generator's inputs."""
    static = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in static]


def _feeds(model, codes) -> dict[str, np.ndarray]:
    names = graph_inputs(model)
    if isinstance(codes, dict):
        missing = [n for n in names if n not in codes]
        if missing:
            raise ValueError(f"no values for graph input(s) {missing}; the model takes {names}")
        return {n: codes[n] for n in names}
    arrays = [codes] if isinstance(codes, np.ndarray) else list(codes)
    if len(arrays) != len(names):
        raise ValueError(f"{len(arrays)} input array(s) for a model with inputs {names}")
    return dict(zip(names, arrays))


def execute_golden(model, codes, build_dir: Path | None = None) -> np.ndarray:
    """Run ``model`` (any stage, also a dataflow partition) on ``codes`` with every RTL layer as its
    backend-neutral golden model: the reference the stage checks and the RTL simulation compare to.

    ``codes``: one array for a single-input model, else a sequence in graph-input order (stages
    rename inputs, never reorder them) or a dict by input name. ``build_dir``: where a parent
    model's (relative) partition file lives."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    feeds = _feeds(model, codes)
    model = ModelWrapper(copy.deepcopy(model.model))
    with tempfile.TemporaryDirectory() as tmp:
        for i, node in enumerate(model.get_nodes_by_op_type("StreamingDataflowPartition")):
            inst = getCustomOp(node)
            child_path = str(Path(tmp) / f"partition_{i}.onnx")
            stored = Path(inst.get_nodeattr("model"))
            if build_dir is not None and not stored.is_absolute():
                stored = Path(build_dir) / stored
            _golden_view(ModelWrapper(str(stored))).save(child_path)
            inst.set_nodeattr("model", child_path)
        model = _golden_view(model)
        return execute_onnx(model, feeds)[model.graph.output[0].name]


def _golden_pair(source, codes_fmts, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Random codes for every input (in its code range) and the ORIGINAL model's output for them,
    fed as the values those codes stand for (through any absorbed pre-processing)."""
    rng = np.random.default_rng(seed)
    codes = []
    for fmt in codes_fmts:
        dtype = fmt.datatype
        shape = source.get_tensor_shape(fmt.input)
        codes.append(rng.integers(dtype.min(), dtype.max() + 1, size=shape).astype(np.float32))
    return codes, execute_golden(source, {fmt.input: fmt.values(c) for fmt, c in zip(codes_fmts, codes)})


def verify_input_files(count: int) -> list[str]:
    """Names of the saved verification inputs: ``verify_input.npy`` for a single-input generator
    (as before), ``verify_input_<k>.npy`` per graph input (graph order) otherwise."""
    return ["verify_input.npy"] if count == 1 else [f"verify_input_{k}.npy" for k in range(count)]


# ------------------------------------------------------------------------------------------------
# Driver


@functools.cache
def compiler_digest() -> str:
    """Digest of the code a stage's output depends on (the compiler passes and our ops): a saved
    stage is reused only if the compiler that wrote it is the one running now."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted([*(package / "compiler").rglob("*.py"), *(package / "ops").rglob("*.py")]):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _stage_key(stage: str, cfg: CompileConfig, source_digest: str) -> str:
    parts = {"source": source_digest, "stage": stage, "compiler": compiler_digest()}
    if stage not in _MODEL_ONLY_STAGES:
        folding = Path(cfg.folding_file).read_bytes().hex() if cfg.folding_file else None
        parts.update(board=cfg.board, fps=cfg.target_fps, clock=cfg.clock_mhz, folding=folding)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _tool_output_to(log_path: Path, title: str):
    """FINN and qonnx print progress and warnings freely; keep them in ``finn.log`` so the
    console shows our stage lines, and the details are there when something goes wrong."""
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
            warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, cat, fname, lineno, file=None, line=None: log.write(
            f"{fname}:{lineno}: {cat.__name__}: {msg}\n")
        log.write(f"==== {title}\n")
        yield


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stage_files(model, path: Path, build_dir: Path) -> dict[str, str]:
    """sha256 of a saved stage model and of the partition file it names, by name relative to the
    build dir: what a resumed compile checks before it reuses the stage."""
    files = [path, *([partition_file(model, build_dir)] if model.get_nodes_by_op_type("StreamingDataflowPartition")
                     else [])]
    return {os.path.relpath(f, build_dir): _sha256(f) for f in files}


def _stage_files_intact(record: dict, build_dir: Path) -> bool:
    """Every file of a saved stage is there, inside the build dir and unchanged (not truncated by an
    interrupted write, not edited since): otherwise the stage is run again."""
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, digest in files.items():
        path = build_dir / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file() or _sha256(path) != digest:
            return False
    return True


def _write_json(path: Path, data: dict) -> None:
    from .._files import write_json_atomic

    write_json_atomic(path, data)


def _artifact_files(source_path: Path) -> tuple[dict | None, list[Path]]:
    """The ``model.json`` beside the source model and the files it names, checked.

    The names are untrusted: each must be a plain file name inside the source directory (no
    absolute path, no ``..``, no sub-directory, no symlink out), as ``fpga-gan export`` writes
    them. Checked when the source is chosen, before any stage runs, and again when copying.
    """
    from .._files import UnsafePathError, inside

    source_dir = source_path.parent
    meta_path = source_dir / "model.json"
    if not meta_path.is_file():
        return None, []
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CompileError(f"{meta_path} is not readable JSON: {err}") from None
    files = meta.get("files", {}) if isinstance(meta, dict) else None
    if not isinstance(files, dict):
        raise CompileError(f"{meta_path}: 'files' must map roles to file names, got {files!r}")
    sources = []
    for role, name in files.items():
        try:
            src = inside(source_dir, name, f"{meta_path}: files.{role}")
        except UnsafePathError as err:
            raise CompileError(f"{err}; fix the model.json beside {source_path.name}") from None
        if src.name != name:
            raise CompileError(f"{meta_path}: files.{role} {name!r} must be a plain file name in "
                               f"{source_dir} (no sub-directories)")
        if src.is_file():
            sources.append(src)
    return meta, sources


def _copy_artifact(source_path: Path, build_dir: Path) -> None:
    """Make the build dir an artifact too (model.json + the CPU graph), when the source was one
    (zoo models, ``fpga-gan export`` output): the runtime's cpu and sim backends then open it.
    Only the checked names of :func:`_artifact_files` are copied, so nothing lands outside."""
    import shutil

    from .._files import write_json_atomic

    meta, sources = _artifact_files(source_path)
    if meta is None:
        return
    for src in sources:
        dest = build_dir / src.name
        if dest.is_symlink():
            dest.unlink()       # never write through a link that points elsewhere
        shutil.copy2(src, dest)
    write_json_atomic(build_dir / "model.json", meta)


def compile_model(cfg: CompileConfig) -> CompileResult:
    """Run (or resume) every stage; raise :class:`CompileError` naming the problem on bad input."""
    from qonnx.core.modelwrapper import ModelWrapper

    from .passes.integer_io import all_input_codes
    from .report import totals_from_nodes, write_report

    cfg.validate()   # again: a config may have been changed since it was made
    board = get_board(cfg.board)
    clock = float(board.default_clock_mhz if cfg.clock_mhz is None else cfg.clock_mhz)
    build_dir = cfg.build_dir()
    # a compile rewrites and removes files in its directory: only in one it made (or a new, empty one)
    refuse_unless_ours(build_dir, BUILD_KIND, "compile --out")
    build_dir.mkdir(parents=True, exist_ok=True)
    mark_dir(build_dir, BUILD_KIND)
    _finn_environment(build_dir)
    source_path = _source_qonnx(cfg)
    source = _load_qonnx(source_path)
    digest = hashlib.sha256(source_path.read_bytes()).hexdigest()[:16]

    state_path = build_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    done = {s["stage"]: s for s in state.get("stages", [])}
    for stale in ("report.json", "report.md", "cycles.png"):
        (build_dir / stale).unlink(missing_ok=True)
    state = {"complete": False, "model": cfg.model_name(), "source": str(source_path), "board": board.name,
             "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "log"},
             "stages": []}
    _write_json(state_path, state)

    ctx = _Context(cfg, board, clock, build_dir, notes=state.get("notes", {}))
    try:
        fmts = all_input_codes(source)
    except ValueError as err:
        raise CompileError(f"{source_path}: {err}") from err
    codes, expected = _golden_pair(source, fmts, cfg.seed)
    for name, array in zip(verify_input_files(len(codes)), codes):
        np.save(build_dir / name, array)
    np.save(build_dir / "verify_expected.npy", expected)

    model, resuming = source, True
    for index, stage in enumerate(STAGES):
        key = _stage_key(stage, cfg, digest)
        path = build_dir / f"{index:02d}_{stage}.onnx"
        record = done.get(stage)
        if resuming and record and record.get("key") == key and stage != "estimates" \
                and _stage_files_intact(record, build_dir):
            model = ModelWrapper(str(path))
            ctx.notes.update(record.get("notes", {}))
            state["stages"].append(record)
            cfg.log(f"[{index + 1}/{len(STAGES)}] {stage:<20} reused")
            continue
        resuming = False
        start = time.perf_counter()
        try:
            with explained_failures(stage), _tool_output_to(build_dir / "finn.log", stage):
                model = _STAGE_FUNCS[stage](model, ctx)
            model.save(str(path))
            with explained_failures(f"{stage} (verification)"), \
                    _tool_output_to(build_dir / "finn.log", f"{stage} verification"):
                got = execute_golden(model, codes, build_dir)
        except CompileError as err:
            state["failed_stage"] = stage
            state["error"] = str(err)
            if err.__cause__ is not None:                   # FINN's own exception, for a bug report
                state["cause"] = "".join(traceback.format_exception(err.__cause__))
            _write_json(state_path, state)
            raise
        exact = bool(got.shape == expected.shape and np.array_equal(got, expected))
        seconds = time.perf_counter() - start
        record = {"stage": stage, "key": key, "seconds": round(seconds, 3), "bit_exact": exact, "inputs": 1,
                  "notes": {k: v for k, v in ctx.notes.items() if k != "nodes"},
                  "files": _stage_files(model, path, build_dir)}
        state["stages"].append(record)
        _write_json(state_path, state)
        cfg.log(f"[{index + 1}/{len(STAGES)}] {stage:<20} {seconds:6.1f} s  bit-exact: {'yes' if exact else 'NO'}")
        if not exact:
            state["failed_stage"] = stage
            _write_json(state_path, state)
            diff = np.abs(got - expected).max() if got.shape == expected.shape else f"shape {got.shape}"
            raise CompileError(f"stage {stage} changed the model's output (max difference {diff}); "
                               f"the model is saved at {path} for inspection")

    nodes = ctx.notes["nodes"]
    totals = totals_from_nodes(nodes, clock)
    from .estimates import deconv_comparison

    report = {
        "model": cfg.model_name(), "board": board.name, "clock_mhz": clock,
        "target_fps": cfg.target_fps, "nodes": nodes, "totals": totals, "budget": budget_dict(board),
        "fits": not fit_check(totals, board),
        "deconv": deconv_comparison(ctx.notes.get("deconv", []), nodes, ctx.notes.get("subpixel_mvaus", [])),
        "verification": [{"stage": s["stage"], "bit_exact": s["bit_exact"], "inputs": s["inputs"]}
                         for s in state["stages"]],
        "stages": [{"stage": s["stage"], "seconds": s["seconds"]} for s in state["stages"]],
    }
    write_report(build_dir, report)
    _copy_artifact(source_path, build_dir)
    state["complete"] = True
    _write_json(state_path, state)
    return CompileResult(build_dir, report)
