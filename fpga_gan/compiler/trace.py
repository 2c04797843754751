"""``fpga-gan trace BUILD_DIR``: one input through every backend of a build, layer by layer.

Why (hls4ml's ``trace`` is the model): when two backends disagree, the final output says only
*that* they do. The trace runs the same input codes through every backend that exists for a
build and names the first place where two disagree: the tensor, the node (name and op type),
how many codes differ and the first differing position.

Backends, in the order the compile creates them:

* ``source``: the QONNX model the build was compiled from (qonnx execution, real-valued input),
* ``cpu``: ONNX Runtime on the QCDQ graph, when the build dir is also an artifact (``model.json``),
* ``NN_<stage>``: every saved compile stage, executed with every RTL layer as its golden model
  (:func:`fpga_gan.compiler.pipeline.execute_golden`'s view); a dataflow partition is executed
  inside its parent, so its layers' tensors are traced too,
* ``partition``: FINN's Python execution of the dataflow partition on its own,
* ``rtl_sim``: the outputs the last RTL simulation recorded (``fpga-gan sim``), against FINN's
  Python execution of the partition on the frames the simulation was fed.

Each stage is compared with the stage before it on every tensor the two share by name and shape
(stages rename little, so most layers' tensors are shared); a tensor whose producing node kept
its name or op family but whose values moved by one constant positive factor (a scale moved past
it by streamlining) counts as the same. The final outputs of every backend are compared with the
source's. The first disagreement in backend order is the answer.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import CompileError

__all__ = ["Disagreement", "BackendRun", "TraceResult", "trace_build", "format_trace", "load_trace_input"]


@dataclass
class Disagreement:
    """Where two backends first disagree."""

    reference: str                 # backend (or stage) compared against
    backend: str
    tensor: str
    node: str | None
    op_type: str | None
    differing: int                 # number of elements (codes) that differ
    total: int
    first_index: tuple[int, ...]
    reference_value: float
    value: float

    def describe(self) -> str:
        node = f"node {self.node!r} ({self.op_type})" if self.node else "the graph input"
        return (f"{self.backend} disagrees with {self.reference} at tensor {self.tensor!r}, produced by {node}: "
                f"{self.differing} of {self.total} codes differ, first at index {list(self.first_index)} "
                f"({self.value:g} vs {self.reference_value:g})")


@dataclass
class BackendRun:
    """One backend's run: how many tensors were compared with its reference and what it found."""

    name: str
    reference: str | None
    compared: int = 0
    output_equal: bool | None = None
    disagreement: Disagreement | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.disagreement is None and self.output_equal is not False


@dataclass
class TraceResult:
    build_dir: Path
    input_shape: tuple[int, ...]
    runs: list[BackendRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    @property
    def first(self) -> Disagreement | None:
        """The first disagreement, in backend order."""
        return next((run.disagreement for run in self.runs if run.disagreement is not None), None)


# ------------------------------------------------------------------------------------------------
# Build files


def _state(build_dir: Path) -> dict:
    path = build_dir / "state.json"
    if not path.is_file():
        raise CompileError(f"{build_dir} is not a compile build dir (no state.json); run fpga-gan compile first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CompileError(f"{path} is not valid JSON ({err}); compile again") from err


def _inside(build_dir: Path, name: str) -> Path:
    """A file the build dir's own metadata names, resolved inside the build dir (no escape)."""
    path = (build_dir / name).resolve()
    if build_dir.resolve() not in path.parents:
        raise CompileError(f"{build_dir}: the file name {name!r} points outside the build directory")
    return path


def _artifact(build_dir: Path) -> dict | None:
    meta = build_dir / "model.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as err:
        raise CompileError(f"{meta} is not valid JSON ({err})") from err


def _source_path(build_dir: Path, state: dict, artifact: dict | None) -> Path:
    if artifact and "qonnx" in artifact.get("files", {}):
        path = _inside(build_dir, artifact["files"]["qonnx"])
        if path.is_file():
            return path
    source = Path(state.get("source", ""))
    if source.is_file():
        return source
    raise CompileError(f"the source QONNX model of {build_dir} is missing ({source}); compile from it again")


def _stage_files(build_dir: Path, state: dict) -> list[tuple[str, Path]]:
    from .pipeline import STAGES

    files = []
    for record in state.get("stages", []):
        stage = record["stage"]
        if stage not in STAGES:
            continue
        path = build_dir / f"{STAGES.index(stage):02d}_{stage}.onnx"
        if path.is_file():
            files.append((path.stem, path))
    if not files:
        raise CompileError(f"{build_dir} holds no saved compile stage (NN_<stage>.onnx); run fpga-gan compile first")
    return files


# ------------------------------------------------------------------------------------------------
# Input


def load_trace_input(build_dir: Path, input_file: Path | None, source) -> np.ndarray:
    """The input codes: ``input_file`` (an .npy of integer codes) checked against the model's
    input shape and code range, or the build's ``verify_input.npy``."""
    from .passes.integer_io import input_codes

    path = Path(input_file) if input_file is not None else build_dir / "verify_input.npy"
    if not path.is_file():
        raise CompileError(f"input file {path} does not exist" + ("" if input_file else
                           "; the build has no verify_input.npy, pass --input FILE.npy"))
    try:
        codes = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise CompileError(f"{path} is not a NumPy .npy file of integer codes: {err}") from err
    shape = tuple(source.get_tensor_shape(source.graph.input[0].name))
    if codes.shape == shape[1:]:
        codes = codes[None]
    if codes.shape != shape:
        raise CompileError(f"{path}: input codes must have shape {shape} (or {shape[1:]}), got {codes.shape}")
    if codes.dtype.kind not in "iuf" or codes.dtype.kind == "f" and (
            not np.isfinite(codes).all() or not np.array_equal(codes, np.round(codes))):
        raise CompileError(f"{path}: the input must hold integer codes, got dtype {codes.dtype}"
                           + (" with non-integer values" if codes.dtype.kind == "f" else ""))
    fmt = input_codes(source)
    lo, hi = int(fmt.datatype.min()), int(fmt.datatype.max())
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise CompileError(f"{path}: codes must lie in [{lo}, {hi}] ({fmt.datatype.name} input), "
                           f"got [{codes.min():g}, {codes.max():g}]")
    return codes.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Execution with every tensor kept


@dataclass
class _Execution:
    values: dict[str, np.ndarray]
    order: list[tuple[str, str | None, str | None]]      # (tensor, producing node, op type), in order
    output: np.ndarray


def _execute_full(model, codes: np.ndarray, build_dir: Path) -> _Execution:
    """Execute ``model`` (golden view of RTL layers) keeping every tensor, partitions' included."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    from .pipeline import _golden_view, partition_file

    model = ModelWrapper(copy.deepcopy(model.model))
    order: list[tuple[str, str | None, str | None]] = [(model.graph.input[0].name, None, None)]
    prefixed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, node in enumerate(model.graph.node):
            if node.op_type == "StreamingDataflowPartition":
                inst = getCustomOp(node)
                child = ModelWrapper(str(partition_file(model, build_dir)))
                child_path = str(Path(tmp) / f"partition_{i}.onnx")
                _golden_view(child).save(child_path)
                inst.set_nodeattr("model", child_path)
                inst.set_nodeattr("return_full_exec_context", 1)
                outputs = {o.name for o in child.graph.output}
                for cnode in child.graph.node:
                    for out in cnode.output:
                        if out not in outputs:
                            prefixed[f"{node.name}_{out}"] = out
                        order.append((out, cnode.name, cnode.op_type))
                for out in node.output:
                    order.append((out, node.name, node.op_type))
            else:
                for out in node.output:
                    order.append((out, node.name, node.op_type))
        model = _golden_view(model)
        context = execute_onnx(model, {model.graph.input[0].name: codes}, return_full_exec_context=True)
    values = {prefixed.get(k, k): v for k, v in context.items() if isinstance(v, np.ndarray)}
    return _Execution(values, order, context[model.graph.output[0].name])


def _same_up_to_scale(a: np.ndarray, b: np.ndarray) -> bool:
    """``b == c * a`` for one positive constant ``c``: a scale that streamlining moved elsewhere."""
    nz = a != 0
    if not np.array_equal(nz, b != 0) or not nz.any():
        return False
    ratios = b[nz].astype(np.float64) / a[nz].astype(np.float64)
    return bool(ratios.min() > 0 and np.allclose(ratios, ratios[0], rtol=1e-6, atol=0))


def _difference(reference: str, backend: str, tensor: str, node, op, ref: np.ndarray, got: np.ndarray):
    diff = ref != got
    if not diff.any():
        return None
    first = tuple(int(i) for i in np.argwhere(diff)[0])
    return Disagreement(reference, backend, tensor, node, op, int(diff.sum()), int(diff.size), first,
                        float(ref[first]), float(got[first]))


def _compare_executions(ref_name: str, ref: _Execution, name: str, run: _Execution, static: set[str]) -> BackendRun:
    """Tensor by tensor, in ``run``'s order: the first shared tensor whose values differ."""
    result = BackendRun(name, ref_name)
    for tensor, node, op in run.order:
        if tensor in static or tensor not in ref.values or tensor not in run.values:
            continue
        a, b = ref.values[tensor], run.values[tensor]
        if a.shape != b.shape:
            continue
        result.compared += 1
        if np.array_equal(a, b) or _same_up_to_scale(a, b):
            continue
        result.disagreement = _difference(ref_name, name, tensor, node, op, a, b)
        break
    return result


def _static_tensors(model) -> set[str]:
    return {i.name for i in model.graph.initializer}


# ------------------------------------------------------------------------------------------------
# The trace


def trace_build(build_dir: str | Path, input_file: str | Path | None = None,
                log: Callable[[str], None] = lambda _m: None) -> TraceResult:
    """Run one input through every backend of ``build_dir``; see the module docstring."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from .passes.integer_io import input_codes
    from .pipeline import _finn_environment, _load_qonnx, _tool_output_to, execute_golden, partition_file

    build_dir = Path(build_dir)
    state = _state(build_dir)
    artifact = _artifact(build_dir)
    source_path = _source_path(build_dir, state, artifact)
    source = _load_qonnx(source_path)
    stages = _stage_files(build_dir, state)
    codes = load_trace_input(build_dir, None if input_file is None else Path(input_file), source)
    result = TraceResult(build_dir, tuple(codes.shape))
    previous_finn_dir = os.environ.get("FINN_BUILD_DIR")
    with tempfile.TemporaryDirectory() as finn_tmp, contextlib.ExitStack() as restore:
        # FINN's scratch files and console output go to a temporary dir: the trace leaves the build as it was
        restore.callback(_restore_env, "FINN_BUILD_DIR", previous_finn_dir)
        _finn_environment(Path(finn_tmp))
        with _tool_output_to(Path(finn_tmp) / "trace.log", "trace"):
            scale = np.float32(input_codes(source).scale)
            log("source (qonnx execution)")
            reference = _execute_full(source, codes * scale, build_dir)
            result.runs.append(BackendRun("source", None, note=str(source_path.name)))
            if artifact is not None:
                result.runs.append(_trace_cpu(build_dir, artifact, codes, reference.output))
            else:
                result.runs.append(BackendRun("cpu", "source", note="the build dir is not an artifact (no model.json)"))
            previous_name, previous, previous_static = "source", reference, _static_tensors(source)
            last_model = None
            for name, path in stages:
                log(name)
                model = ModelWrapper(str(path))
                run = _execute_full(model, codes, build_dir)
                static = _static_tensors(model) | previous_static
                step = _compare_executions(previous_name, previous, name, run, static)
                if model.get_nodes_by_op_type("StreamingDataflowPartition"):
                    step.note = "the partition file is shared by every stage from dataflow_partition on"
                step.output_equal = bool(np.array_equal(run.output, reference.output))
                if step.disagreement is None and not step.output_equal:
                    out = model.graph.output[0].name
                    last = run.order[-1]
                    step.disagreement = _difference("source", name, out, last[1], last[2], reference.output,
                                                    run.output) if run.output.shape == reference.output.shape \
                        else None
                    step.note = f"output shape {run.output.shape}, source {reference.output.shape}" \
                        if run.output.shape != reference.output.shape else step.note
                result.runs.append(step)
                previous_name, previous, previous_static, last_model = name, run, _static_tensors(model), model
            if last_model is not None and last_model.get_nodes_by_op_type("StreamingDataflowPartition"):
                log("partition")
                node = last_model.get_nodes_by_op_type("StreamingDataflowPartition")[0]
                child_path = partition_file(last_model, build_dir)
                result.runs.append(_trace_partition(node, ModelWrapper(str(child_path)), previous, previous_name,
                                                    execute_golden))
                log("rtl_sim")
                result.runs.append(_trace_rtl_sim(build_dir, child_path, execute_golden))
    return result


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _trace_cpu(build_dir: Path, artifact: dict, codes: np.ndarray, source_output: np.ndarray) -> BackendRun:
    """ONNX Runtime on the QCDQ graph (the runtime's cpu backend), against the source's codes."""
    from ..runtime import Accelerator

    run = BackendRun("cpu", "source")
    out_scale = float(artifact["outputs"][0]["scale"])
    with Accelerator.open(build_dir, backend="cpu") as acc:
        got = acc.run(codes.astype(acc.input_spec.dtype)).astype(np.float64)
    expected = source_output.astype(np.float64) / out_scale
    run.compared = 1
    run.output_equal = bool(got.shape == expected.shape and np.array_equal(got, expected))
    if got.shape == expected.shape:
        run.disagreement = _difference("source", "cpu", artifact["outputs"][0]["name"], None, "QCDQ graph output",
                                       expected, got)
    else:
        run.note = f"output shape {got.shape}, source {expected.shape}"
    run.note = run.note or "ONNX Runtime on model.qcdq.onnx, output codes"
    return run


def _trace_partition(node, child, last: _Execution, last_name: str, execute_golden) -> BackendRun:
    """FINN's Python execution of the dataflow partition alone, on the input the last stage gave it."""
    run = BackendRun("partition", last_name, note="FINN's Python execution of the partition alone")
    got = execute_golden(child, last.values[node.input[0]])
    expected = last.values[node.output[0]]
    run.compared = 1
    run.output_equal = bool(got.shape == expected.shape and np.array_equal(got, expected))
    if got.shape == expected.shape:
        run.disagreement = _difference(last_name, "partition", node.output[0], node.name, node.op_type, expected, got)
    return run


def _trace_rtl_sim(build_dir: Path, child_path: Path, execute_golden) -> BackendRun:
    """The frames the last RTL simulation recorded, against FINN's Python execution on its inputs."""
    import hashlib

    from qonnx.core.modelwrapper import ModelWrapper

    from ..runtime.packing import beat_bytes
    from ..sim.rtl import RtlDesign
    from ..sim.verilator import beats_to_frames

    run = BackendRun("rtl_sim", "partition")
    sim_dir = build_dir / "sim"
    outputs, vectors = sim_dir / "result.json.outputs.npy", sim_dir / "vectors.npz"
    design_dir = next((build_dir / d for d in ("rtl", "rtl-gauge") if (build_dir / d / "design.json").is_file()), None)
    if not (outputs.is_file() and vectors.is_file() and design_dir is not None):
        run.note = "not simulated (run fpga-gan sim BUILD_DIR to add it)"
        return run
    design = RtlDesign.load(design_dir)
    if design.source_digest and design.source_digest != hashlib.sha256(child_path.read_bytes()).hexdigest()[:16]:
        run.note = "the recorded simulation is of an earlier compile: run fpga-gan sim again"
        return run
    beats_in, beats_out = np.load(vectors)["inputs"], np.load(outputs)
    out_bytes = design.out_beats_per_frame * beat_bytes(design.out_bits, design.out_elems_per_beat)
    if beats_in.ndim != 3 or beats_in.shape[1] != design.in_beats_per_frame or beats_out.ndim != 2 \
            or beats_out.shape[1] != out_bytes:
        run.note = "the last simulation was of a cut of the design (fpga-gan sim --layers): not compared"
        return run
    child = ModelWrapper(str(child_path))
    frames_in = beats_to_frames(beats_in, design.in_bits, design.in_elems_per_beat, design.in_signed)
    got = beats_to_frames(beats_out, design.out_bits, design.out_elems_per_beat, design.out_signed)
    expected = np.stack([execute_golden(child, f.reshape(1, *design.in_shape[1:]).astype(np.float32))[0].reshape(-1)
                         for f in frames_in]).astype(np.int64)
    run.compared = len(got)
    run.note = f"{len(got)} frames recorded by the last fpga-gan sim"
    run.output_equal = bool(got.shape == expected.shape and np.array_equal(got, expected))
    if got.shape == expected.shape:
        out = child.graph.output[0].name
        producer = child.find_producer(out)
        run.disagreement = _difference("partition", "rtl_sim", out, producer.name if producer else None,
                                       producer.op_type if producer else None, expected, got)
    else:
        run.note += f"; output shape {got.shape}, expected {expected.shape}"
    return run


def format_trace(result: TraceResult) -> str:
    """The printed form: one line per backend, then where the first disagreement is."""
    lines = [f"trace of {result.build_dir} on input {list(result.input_shape)}"]
    for run in result.runs:
        if run.reference is None:
            lines.append(f"  {run.name:<24} reference ({run.note})")
            continue
        if run.compared == 0 and run.output_equal is None:
            lines.append(f"  {run.name:<24} skipped: {run.note}")
            continue
        status = "agrees" if run.ok else "DISAGREES"
        unit = "frame" if run.name == "rtl_sim" else "tensor"
        what = f"{run.compared} {unit}" + ("s" if run.compared != 1 else "")
        lines.append(f"  {run.name:<24} {status} with {run.reference} ({what} compared"
                     + ("" if run.output_equal is None else f", output {'equal' if run.output_equal else 'DIFFERS'}")
                     + (f"; {run.note}" if run.note and run.name in ("cpu", "partition", "rtl_sim") else "") + ")")
    first = result.first
    if first is not None:
        lines.append("first disagreement: " + first.describe())
    elif not result.ok:
        bad = next(r for r in result.runs if not r.ok)
        lines.append(f"first disagreement: {bad.name}'s output differs from {bad.reference}'s ({bad.note})")
    else:
        lines.append("all backends agree")
    return "\n".join(lines)
