"""The one place an op is registered, and the facts the compiler and the simulator ask an op for.

Why: before this module an op was known to six files and a dozen string checks
(``op_type.startswith("DuplicateStreams")`` in the simulator, ``"StreamingConcat"`` in folding and
estimates). Now a layer answers for itself:

* our ops are backend-neutral classes decorated with :func:`register_op`; the decorator builds the
  ``<Name>_rtl`` backend (unless the module defines one), fills ``fpga_gan.ops.custom_op`` (qonnx
  resolves the ``fpga_gan.ops`` domain through it) and FINN's RTL domain dict (FINN's tooling only
  knows specialized layers of ``finn.custom_op.fpgadataflow.rtl``);
* every layer, ours or FINN's, may declare :class:`OpFacts`: ours as a class attribute ``FACTS``,
  FINN's through :func:`declare_facts` keyed by FINN's class (see :mod:`fpga_gan.ops.finn_facts`).
  :func:`facts_of` walks the class's MRO, so facts declared on ``ElementwiseAdd`` also hold for
  ``ElementwiseAdd_rtl``, and ``Thresholding`` facts for ``Thresholding_rtl``.

Nothing here imports the compiler or the simulator: hooks receive the layer instance and, for the
simulator, a small :class:`Stitch` object describing the top level being written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["FINN_RTL_DOMAIN", "LintCase", "OpFacts", "Stitch", "custom_op", "declare_facts", "facts_of",
           "op_passes", "register_op", "registered_ops"]

FINN_RTL_DOMAIN = "finn.custom_op.fpgadataflow.rtl"

# Stream roles (what the simulator's FIFO sizing needs to know about a layer):
FORK = "fork"   # one stream in, several identical streams out (a skip connection starts here)
JOIN = "join"   # several streams in, consumed in lockstep (a skip connection ends here): concat, add
PASS = "pass"   # one stream in, one out, in order, that a skip path may run through: FIFOs, width
                # converters, a requantizing Thresholding on a residual bypass
STREAM_ROLES = ("", FORK, JOIN, PASS)

# Roles in a sub-pixel (transposed) convolution, for the zero-free vs zero-insertion report:
COMPUTE = "compute"          # computes output phases (FINN's MVAU)
GATHER = "gather"            # its output is made of its inputs' (a channel concat of phase streams)
INTERLEAVE = "interleave"    # interleaves phases into space: the end of a sub-pixel convolution
PHASE_ROLES = ("", COMPUTE, GATHER, INTERLEAVE)


@dataclass
class Stitch:
    """What a simulation hook may add to the stitched top level for one layer instance.

    ``conns`` maps the layer wrapper's port names to nets (prefilled with clock, reset and the
    stream ports); ``params`` is the Verilog parameter override string of the instance
    (``' #(.NAME(value))'``). ``add_sources``, ``wires`` and ``instances`` add files, net
    declarations and further module instances (a weight streamer, say). ``code_dir`` is the
    layer's code generation directory; ``rtllib`` finn-rtllib's root.
    """

    node_name: str
    code_dir: Path
    rtllib: Path
    conns: dict[str, str]
    add_sources: Callable[[list], None]
    wires: list[str]
    instances: list[str]
    params: str = ""
    ports_of: Callable[[Path, str], dict[str, str]] | None = None   # (verilog file, module) -> ports
    instance: Callable[..., str] | None = None                      # (module, name, ports, conns, params)


def _channels_limit(inst, key: str) -> tuple[int, str]:
    return int(inst.get_normal_input_shape()[-1]), "channels"


@dataclass(frozen=True)
class OpFacts:
    """Facts about one kind of layer that generic code (simulator, folding, estimates) needs.

    Every field has the neutral default, so a layer declares only what makes it special.

    stream_role: ``""``, :data:`FORK`, :data:`JOIN` or :data:`PASS` (see above). The simulator
        gives the FIFOs on a path fork -> (pass)* -> join their full measured depth: they hold
        what the long branch of a skip connection delays, and a shallower one deadlocks.
    sized_fifo: the layer is a stream FIFO whose depth the simulator sizes (``depth`` attribute);
        it is given a fill gauge (``fifo_peak_<k>``) in the stitched top.
    sim_hook: ``hook(inst, node, stitch: Stitch) -> None``, called while the simulator stitches
        the layer in: add parameters, sources, wires, instances (FINN's thresholds path, the MVAU
        weight streamer).
    fold_limit: ``limit(inst, key) -> (n, what)``: the count that folding attribute ``key``
        ("PE" or "SIMD") must divide and what it is called in errors; default: input channels.
    phase_role: ``""``, :data:`COMPUTE`, :data:`GATHER` or :data:`INTERLEAVE` (see above).
    fold_knob: the folding attribute ("SIMD" or "PE") the compiler raises, after FINN's
        SetFolding (whose op lists do not know the layer), to the smallest divisor of
        ``fold_limit`` that meets the cycle target; ``""``: SetFolding's business, or fixed.
    fold: ``fold(inst, target_cycles) -> None`` for a layer whose folding needs more than one
        knob raised to a divisor (it sets the attributes itself), called after SetFolding with
        the cycles of the slowest other layer as the target; None: nothing to do.
    lut_estimate: ``lut_estimate(inst) -> int``, the layer's LUTs where FINN's own estimate
        counts none (FINN's RTL elementwise ops count only their parameter memory); None: FINN's.
    """

    stream_role: str = ""
    sized_fifo: bool = False
    sim_hook: Callable | None = None
    fold_limit: Callable[[object, str], tuple[int, str]] = _channels_limit
    phase_role: str = ""
    fold_knob: str = ""
    fold: Callable[[object, int], None] | None = None
    lut_estimate: Callable[[object], int] | None = None

    def __post_init__(self):
        if self.stream_role not in STREAM_ROLES:
            raise ValueError(f"OpFacts.stream_role {self.stream_role!r} is not one of {STREAM_ROLES}")
        if self.phase_role not in PHASE_ROLES:
            raise ValueError(f"OpFacts.phase_role {self.phase_role!r} is not one of {PHASE_ROLES}")
        if self.fold_knob not in ("", "PE", "SIMD"):
            raise ValueError(f"OpFacts.fold_knob {self.fold_knob!r} is not '', 'PE' or 'SIMD'")


NO_FACTS = OpFacts()
_DECLARED: dict[type, OpFacts] = {}


def declare_facts(cls: type, facts: OpFacts) -> None:
    """Declare ``facts`` for a layer class we do not own (FINN's), and its subclasses.

    Declare on the backend-neutral class (``Thresholding``, not ``Thresholding_rtl``) so the
    HLS and RTL variants share them. Declaring twice for one class with different facts is an
    error: two modules would disagree about one layer.
    """
    old = _DECLARED.get(cls)
    if old is not None and old != facts:
        raise RuntimeError(f"facts for {cls.__name__} declared twice with different values")
    _DECLARED[cls] = facts


def facts_of(inst) -> OpFacts:
    """The facts of a layer instance (a qonnx CustomOp) or class: the most derived declaration
    in its MRO, a class's own ``FACTS`` attribute or a :func:`declare_facts` entry."""
    cls = inst if isinstance(inst, type) else type(inst)
    for klass in cls.__mro__:
        own = klass.__dict__.get("FACTS")
        if own is not None:
            return own
        if klass in _DECLARED:
            return _DECLARED[klass]
    return NO_FACTS


# ---------------------------------------------------------------------------------- registration

custom_op: dict[str, type] = {}
_OPS: list[type] = []


@dataclass(frozen=True)
class LintCase:
    """One configuration of an op whose generated wrapper ``make lint`` and the tests lint."""

    name: str
    in_shapes: list[tuple[int, ...]]
    out_shapes: list[tuple[int, ...]]
    dtype: str
    attrs: dict = field(default_factory=dict)


def register_op(cls: type) -> type:
    """Class decorator of a backend-neutral fpga_gan op: register it and its RTL backend.

    The RTL backend ``<Name>_rtl`` is made here, ``class <Name>_rtl(GanRTLMixin, cls)``: it
    needs nothing the op class does not already say (``RTL_CORE``, ``RTL_DEPS``,
    ``rtl_parameters()``). It is put into the op's module, so ``from .<module> import <Name>_rtl``
    works as for a hand-written class.
    """
    import sys

    from ._base import GanRTLMixin

    name = cls.__name__
    if not getattr(cls, "RTL_CORE", ""):
        raise TypeError(f"{name}: an fpga_gan op names its RTL core (RTL_CORE = '<core>.sv' in hw/rtl)")
    module = sys.modules[cls.__module__]
    rtl = type(f"{name}_rtl", (GanRTLMixin, cls),
               {"__module__": cls.__module__, "__doc__": f"RTL backend of {name}: hw/rtl/{cls.RTL_CORE}."})
    setattr(module, rtl.__name__, rtl)
    for c in (cls, rtl):
        if c.__name__ in custom_op and custom_op[c.__name__] is not c:
            raise RuntimeError(f"two fpga_gan ops are called {c.__name__}")
        custom_op[c.__name__] = c
    if cls not in _OPS:
        _OPS.append(cls)
    _register_with_finn(rtl)
    return cls


def _register_with_finn(rtl: type) -> None:
    """Make an ``*_rtl`` class resolvable in FINN's RTL domain (``is_rtl_node``, SetFolding,
    PrepareIP and IP stitching only recognise that domain). The names must not shadow FINN's."""
    import finn.custom_op.fpgadataflow.rtl as finn_rtl

    existing = finn_rtl.custom_op.get(rtl.__name__)
    if existing is not None and existing is not rtl:
        raise RuntimeError(f"FINN already defines {rtl.__name__}; fpga_gan's op would shadow it")
    finn_rtl.custom_op[rtl.__name__] = rtl


def registered_ops() -> list[type]:
    """The backend-neutral op classes, in registration order."""
    import fpga_gan.ops  # noqa: F401 - imports (registers) every op module

    return list(_OPS)


def op_passes(kind: str) -> list:
    """Fresh instances of every registered op's compiler passes of ``kind``: "layout" (the
    streamline stage's Transpose moves) or "infer" (the convert_to_hw stage's layer inference)."""
    attr = {"layout": "LAYOUT_PASSES", "infer": "INFER_PASSES"}[kind]
    return [p() for op in registered_ops() for p in getattr(op, attr)]
