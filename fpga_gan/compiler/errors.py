"""Errors of the compile pipeline, and FINN's failures translated into them.

Why a class of its own: compiler code raises :class:`CompileError` for a problem the user can fix
(an unknown board name, a layer no RTL streams, a design that does not fit). It is a
:class:`fpga_gan.errors.UserError`, so the CLI's one handler prints its message alone, with no
traceback; any other exception is a bug and keeps its traceback.

FINN and qonnx check their preconditions with bare ``assert`` statements (and, in finn-plus,
``FINNUserError``) deep inside a transformation or a custom op. What reaches the user from there
is ``AssertionError`` and a traceback through FINN. :func:`stage_failure` turns such an exception
into a :class:`CompileError` that names the stage, the node (name and op type, found in the
traceback frames: FINN's custom ops carry ``self.onnx_node``, its transformations a ``node``
local), what FINN checked (the failing statement, read from FINN's source) and what to change,
from :data:`KNOWN_CHECKS`, a table of FINN's checks that a model can trip.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from ..errors import FpgaGanError, UserError

__all__ = ["CompileError", "FinnCheck", "KNOWN_CHECKS", "explained_failures", "stage_failure"]


class CompileError(UserError):
    """A compile failure whose message tells the user what to change."""


@dataclass(frozen=True)
class FinnCheck:
    """One of FINN's checks a model can trip, and what the user changes when it fails.

    ``pattern`` is searched (case-insensitive) in the failing statement's source and FINN's
    message; ``op`` (a prefix of the op type), when set, must match the failing node too.
    """

    pattern: str
    fix: str
    op: str | None = None


#: FINN's checks, most specific first. The fix says what to change in the model or the options.
KNOWN_CHECKS: tuple[FinnCheck, ...] = (
    FinnCheck(r"thres\w*\s*>=\s*0|positive thresholds",
              "the activation's thresholds fall below zero on an unsigned input: the layer before it outputs "
              "unsigned codes (a ReLU) but a folded bias or BatchNorm puts thresholds below 0. Give the "
              "activation a signed input (no ReLU before it), or remove the negative bias / BatchNorm shift, "
              "or clip the thresholds to the input range"),
    FinnCheck(r"can't be expressed with type|thresholds.*datatype|weightDataType",
              "the thresholds do not fit the threshold datatype FINN chose: lower the accumulator width "
              "(fewer weight or input bits) or the BatchNorm scale, so the thresholds are small integers"),
    FinnCheck(r"out_scale",
              "the activation's output is still scaled (out_scale != 1): use a power-of-two or per-tensor "
              "activation scale so streamlining can move the scale to the graph's output"),
    FinnCheck(r"out_bias must be integer",
              "the activation's output bias is not an integer: use a quantizer whose zero point is an "
              "integer (Brevitas' default), or a signed quantizer with narrow_range=False"),
    FinnCheck(r"Signed output requires actval",
              "a signed activation needs a negative output bias: export the quantizer as signed with its "
              "zero point at the range's centre (Brevitas' default QuantIdentity / QuantHardTanh)"),
    FinnCheck(r"Threshold\s+shape incorrect|First dimension of thresholds|Channels of threshold matrix",
              "the thresholds' channel count differs from the tensor's: a per-channel activation quantizer "
              "must have one scale per channel of THIS tensor (or use a per-tensor scale)"),
    FinnCheck(r"pad_val|support zero",
              "the padding value is not zero: FINN's padding layer pads zeros only; use padding_mode='zeros' "
              "and a quantizer whose zero point is 0 before the padded convolution"),
    FinnCheck(r"kernel or stride > FM dimension|kernel_height <= ifm_dim_h",
              "a convolution's kernel (with dilation) or stride is larger than its input feature map: lower "
              "the kernel, stride or dilation, or feed a larger image"),
    FinnCheck(r"increment > buffer size|parallel_window",
              "the sliding-window generator cannot address this kernel/stride/dilation with the chosen SIMD: "
              "use a smaller dilation or stride, or set SIMD to the input channels (parallel window)"),
    FinnCheck(r"dilation",
              "this kernel/stride/dilation combination is outside FINN's sliding-window generator: use "
              "dilation 1 or a kernel and stride that divide the feature map"),
    FinnCheck(r"%\s*simd|divisable by SIMD|divide IFMChannels|SIMD must",
              "SIMD must divide the layer's input channels (times the kernel, for an MVAU): pick a divisor in "
              "--folding, or let the compiler fold (no --folding)"),
    FinnCheck(r"%\s*pe|divisable by PE|PE must",
              "PE must divide the layer's output channels: pick a divisor in --folding, or let the compiler "
              "fold (no --folding)"),
    FinnCheck(r"is_integer|not integer|integer datatype|FLOAT32",
              "a tensor here is not an integer datatype (float weights or activations): quantize every layer "
              "(Brevitas QuantConv2d with a weight quantizer and a QuantReLU / QuantIdentity after it), so "
              "FINN sees integer codes everywhere"),
    FinnCheck(r"cycle-free graph violated|partition depends on itself",
              "a node between hardware layers has no hardware implementation, so the accelerator would leave "
              "and re-enter the FPGA: replace that layer with one FINN streams (conv, ReLU, concat)"),
    FinnCheck(r"shape information|unspecified tensor shapes|Shape mismatch|Shape changed",
              "a tensor's shape is unknown or changed across a layer: export with a fixed input size "
              "(no dynamic axes other than the batch) and a single frame"),
    FinnCheck(r"URAM weights must have runtime_writeable",
              "this board cannot hold these weights in URAM: lower --target-fps or move them to BRAM"),
)

_GENERIC_FIX = ("FINN rejects this layer's configuration; change the layer (its bit widths, kernel, stride or "
                "channel counts) or its folding. If the model looks valid, please report it with "
                "finn.log from the build directory")


def _node_of(frame: FrameType):
    """The ONNX node a FINN frame works on: a custom op's ``self.onnx_node`` or a ``node`` local."""
    from onnx import NodeProto

    local = frame.f_locals
    owner = local.get("self")
    node = getattr(owner, "onnx_node", None)
    if isinstance(node, NodeProto):
        return node
    for name in ("node", "n", "consumer", "producer"):
        if isinstance(local.get(name), NodeProto):
            return local[name]
    return None


def _frames(tb: TracebackType | None) -> list[tuple[FrameType, int]]:
    return list(traceback.walk_tb(tb))


@functools.cache
def _statements(path: str) -> list[ast.stmt]:
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    return [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]


def _failing_assert(frame: FrameType, lineno: int) -> str | None:
    """The condition of the ``assert`` at ``lineno`` (FINN spreads them over lines), or None if
    the statement there is not an assert."""
    path = frame.f_code.co_filename
    best = None
    for stmt in _statements(path):
        if stmt.lineno <= lineno <= (stmt.end_lineno or stmt.lineno):
            if best is None or stmt.lineno >= best.lineno:
                best = stmt
    if not isinstance(best, ast.Assert):
        return None
    try:
        source = ast.get_source_segment(Path(path).read_text(), best.test)
    except OSError:
        return None
    return " ".join(source.split()) if source else None


_TOOLS = {"finn": "FINN", "qonnx": "qonnx", "fpga_gan": "fpga_gan", "onnx": "ONNX", "onnxruntime": "ONNX Runtime"}


def _where(frame: FrameType, lineno: int) -> tuple[str, str]:
    """Which tool raised (FINN, qonnx, ...) and where: ``finn/custom_op/...py:336, in fn``."""
    path = Path(frame.f_code.co_filename)
    parts, tool = path.parts, None
    for root in _TOOLS:
        if root in parts:
            path = Path(*parts[len(parts) - 1 - parts[::-1].index(root):])
            tool = _TOOLS[root]
            break
    return tool or path.stem, f"{path.as_posix()}:{lineno}, in {frame.f_code.co_name}"


def known_fix(check: str, message: str, op_type: str | None) -> str | None:
    """What to change for a failed FINN check (``None`` if the check is not in the table)."""
    text = f"{check}\n{message}"
    for entry in KNOWN_CHECKS:
        if entry.op and not (op_type or "").startswith(entry.op):
            continue
        if re.search(entry.pattern, text, re.IGNORECASE):
            return entry.fix
    return None


def stage_failure(stage: str, err: BaseException) -> CompileError:
    """A :class:`CompileError` for an exception FINN, qonnx or a pass raised inside ``stage``."""
    frames = _frames(err.__traceback__)
    node = next((n for n in (_node_of(f) for f, _ in reversed(frames)) if n is not None), None)
    raiser, lineno = frames[-1] if frames else (None, 0)
    check = _failing_assert(raiser, lineno) if raiser is not None else None
    message = " ".join(str(err).split()).rstrip(".")
    where = ("a node FINN did not name" if node is None else f"node {node.name!r} ({node.op_type})" if node.name
             else f"a {node.op_type} node FINN inserted (not yet named)")
    fix = known_fix(check or "", message, node.op_type if node is not None else None) or _GENERIC_FIX
    tool, location = _where(raiser, lineno) if raiser is not None else ("FINN", "unknown location")
    if check:
        what = f"{tool} checked `{check}` ({location}) and it is false" + (f": {message}" if message else "")
    else:
        what = f"{tool} raised {type(err).__name__} ({location})" + (f": {message}" if message else "")
    return CompileError(f"stage {stage} failed at {where}: {what}. What to change: {fix}")


@contextlib.contextmanager
def explained_failures(stage: str):
    """Run a stage so that any exception not of fpga_gan's own (FINN's, qonnx's, a bare assert)
    leaves it as a :class:`CompileError` from :func:`stage_failure` (the original is chained as its
    cause); our own errors already say what to change and pass through."""
    try:
        yield
    except FpgaGanError:
        raise
    except Exception as err:  # noqa: BLE001 - FINN raises AssertionError, Exception and its own types
        raise stage_failure(stage, err) from err
