"""Folding (PE / SIMD per layer) for a board: FINN's SetFolding, or a user's JSON, then a fit check.

Why a search: ``SetFolding`` meets a cycle target greedily but knows nothing of the board. We run
it at the requested frame rate and check the estimate against the board budget; with no target
we search (bisection on the cycle target) for the fastest folding that fits. Either way a design
that does not fit fails with the resource, the excess and the largest frame rate that does fit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from ..ops.registry import facts_of
from .boards import fit_check
from .errors import CompileError

__all__ = ["apply_folding", "check_folded", "folding_file_problems", "validate_folding", "resource_totals"]


def resource_totals(model: ModelWrapper, fpgapart: str) -> dict:
    from ..ops import facts_of

    totals = {"lut": 0.0, "bram18": 0.0, "uram": 0.0, "dsp": 0.0, "cycles": 0}
    for node in model.graph.node:
        inst = getCustomOp(node)
        res = inst.node_res_estimation(fpgapart)
        if (luts := facts_of(inst).lut_estimate) is not None:       # where FINN counts none
            res = {**res, "LUT": luts(inst)}
        totals["lut"] += res.get("LUT", 0)
        totals["bram18"] += res.get("BRAM_18K", 0)
        totals["uram"] += res.get("URAM", 0)
        totals["dsp"] += res.get("DSP", 0)
        totals["cycles"] = max(totals["cycles"], int(inst.get_exp_cycles()))
    return totals


def balance_memories(model: ModelWrapper, board) -> ModelWrapper:
    """Move MVAU weight memories to UltraRAM while block RAM is over budget.

    Boards with URAM (zcu104, kv260) have more weight storage there than in BRAM; FINN keeps
    weights in BRAM unless a layer's ``ram_style`` says "ultra". Greedy, by block RAM saved per
    URAM spent, as long as the URAM budget holds.
    """
    if board.uram <= 0:
        return model
    costs = []
    for node in model.graph.node:
        if not node.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(node)
        inst.set_nodeattr("ram_style", "auto")
        inst.set_nodeattr("runtime_writeable_weights", 0)
        bram = inst.bram_estimation(board.part)
        inst.set_nodeattr("mem_mode", "internal_decoupled")
        inst.set_nodeattr("ram_style", "ultra")
        uram = inst.uram_estimation(board.part)
        inst.set_nodeattr("ram_style", "auto")
        if bram > 0:
            costs.append((bram / max(uram, 1), bram, uram, inst))
    totals = resource_totals(model, board.part)
    bram_over, uram_free = totals["bram18"] - board.bram18, board.uram - totals["uram"]
    for _, bram, uram, inst in sorted(costs, key=lambda c: c[0], reverse=True):
        if bram_over <= 0:
            break
        if uram <= uram_free:
            inst.set_nodeattr("ram_style", "ultra")
            inst.set_nodeattr("runtime_writeable_weights", 1)     # FINN: URAM weights on UltraScale+
            bram_over, uram_free = bram_over - bram, uram_free - uram
    return model


# Deepest weight memory (words) an MVAU keeps after folding; deeper ones waste block RAM (FINN
# packs a narrow, very deep memory badly: 3.3 Mbit of stem weights took 480 BRAM18 at PE=1).
MAX_WEIGHT_DEPTH = 8192


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _window_simd(model: ModelWrapper, node) -> int | None:
    """Elements per beat of the sliding-window generator feeding an MVAU, if one does: its SIMD,
    or its SIMD times the kernel size when it emits whole windows (``parallel_window``, which
    SetFolding turns on for a fast 7x7 layer on few channels such as CycleGAN's c7s1)."""
    producer = model.find_producer(node.input[0])
    if producer is None or not producer.op_type.startswith("ConvolutionInputGenerator"):
        return None
    return int(getCustomOp(producer).get_folded_output_shape()[-1])


def _simd_fits_window(simd: int, window_simd: int | None) -> bool:
    """An MVAU SIMD that is not a multiple or divisor of its window generator's stream width needs
    a width converter with a non-integer ratio, which (measured in RTL simulation) moves fewer
    elements per cycle than either side: the try-on ran 1.5x slower than estimated for it."""
    return window_simd is None or simd % window_simd == 0 or window_simd % simd == 0


def widen_deep_memories(model: ModelWrapper, fpgapart: str, max_depth: int = MAX_WEIGHT_DEPTH) -> ModelWrapper:
    """Raise PE of MVAUs whose weight memory is deeper than ``max_depth`` words.

    SetFolding picks the slowest folding meeting the cycle target, which for a layer with many
    weights and few cycles to spend (the DCGAN stem on its 1x1 input) is a memory thousands of
    words deep and a few bits wide. A wider one holds the same bits in far fewer RAMs and runs
    faster; it costs DSPs, which the fit check then accounts for. Among the foldings that are no
    slower and at most 8x wider (or 4x the width that reaches max_depth), the one FINN estimates to need the fewest BRAM18 wins.
    """
    for node in model.graph.node:
        if not node.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(node)
        mh, mw = inst.get_nodeattr("MH"), inst.get_nodeattr("MW")
        pe, simd = inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")
        if mh * mw // (pe * simd) <= max_depth:
            continue
        lanes_cap = max(8 * pe * simd, 4 * mh * mw // max_depth)
        window = _window_simd(model, node)
        options = [(p, s) for p in _divisors(mh) if p >= pe for s in _divisors(mw)
                   if s >= simd and p * s <= lanes_cap and mh * mw // (p * s) <= max_depth
                   and _simd_fits_window(s, window)]
        best = None
        for p, s in options:
            inst.set_nodeattr("PE", p)
            inst.set_nodeattr("SIMD", s)
            cost = (inst.bram_estimation(fpgapart), p * s)
            if best is None or cost < best[0]:
                best = (cost, p, s)
        if best is None:
            inst.set_nodeattr("PE", pe)
            inst.set_nodeattr("SIMD", simd)
        else:
            inst.set_nodeattr("PE", best[1])
            inst.set_nodeattr("SIMD", best[2])
    return model


def pack_dsp_lanes(model: ModelWrapper, board) -> ModelWrapper:
    """Re-shape each MVAU's PE x SIMD for the board's DSP packing, never slower.

    FINN's RTL MVU packs four PEs into one DSP48 (three SIMD lanes into one DSP58), but
    SetFolding grows SIMD first and leaves PE at 1, so every lane costs a whole DSP. Among the
    foldings with at least as many lanes (and at most twice as many), take the one with the
    smallest DSP + BRAM share of the board, as FINN estimates them.
    """
    for node in model.graph.node:
        if not node.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(node)
        mh, mw = inst.get_nodeattr("MH"), inst.get_nodeattr("MW")
        pe, simd = inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")
        lanes = pe * simd

        def cost(p: int, s: int) -> tuple[float, int]:
            inst.set_nodeattr("PE", p)
            inst.set_nodeattr("SIMD", s)
            share = inst.dsp_estimation(board.part) / board.dsp + inst.bram_estimation(board.part) / board.bram18
            return share, p * s

        window = _window_simd(model, node)
        best = min(((cost(p, s), p, s) for p in _divisors(mh) for s in _divisors(mw)
                    if lanes <= p * s <= 2 * lanes and (mh // p) * (mw // s) <= (mh // pe) * (mw // simd)
                    and _simd_fits_window(s, window)),
                   default=None)
        if best is None or best[0] >= cost(pe, simd):
            inst.set_nodeattr("PE", pe)
            inst.set_nodeattr("SIMD", simd)
        else:
            inst.set_nodeattr("PE", best[1])
            inst.set_nodeattr("SIMD", best[2])
    return model


def fold_declared_knobs(model: ModelWrapper, target_cycles: int) -> ModelWrapper:
    """Fold the layers FINN's SetFolding does not know (its op lists are fixed): each layer that
    declares a ``fold_knob`` (:mod:`fpga_gan.ops.registry`) gets the smallest divisor of its
    ``fold_limit`` that meets ``target_cycles``, or the largest one."""
    for node in model.graph.node:
        inst = getCustomOp(node)
        facts = facts_of(inst)
        if not facts.fold_knob:
            continue
        limit, _ = facts.fold_limit(inst, facts.fold_knob)
        for value in _divisors(limit):
            inst.set_nodeattr(facts.fold_knob, value)
            if inst.get_exp_cycles() <= target_cycles:
                break
    return model


def _fold(model: ModelWrapper, target_cycles: int, ctx) -> ModelWrapper:
    from finn.transformation.fpgadataflow.set_folding import SetFolding

    model = model.transform(SetFolding(target_cycles_per_frame=max(1, int(target_cycles)),
                                       mvau_wwidth_max=ctx.cfg.mvau_wwidth_max, two_pass_relaxation=True))
    model = fold_declared_knobs(model, max(1, int(target_cycles)))
    model = pack_dsp_lanes(widen_deep_memories(model, ctx.board.part), ctx.board)
    from ..ops import facts_of

    layers = [getCustomOp(node) for node in model.graph.node]
    own = [inst for inst in layers if facts_of(inst).fold is not None]    # layers SetFolding does not fold
    if own:                                         # no faster than the slowest other layer needs
        others = [int(inst.get_exp_cycles()) for inst in layers if facts_of(inst).fold is None]
        for inst in own:
            facts_of(inst).fold(inst, max(1, int(target_cycles), max(others, default=1)))
    return balance_memories(model, ctx.board)


def folding_file_problems(config) -> list[str]:
    """The shape of a folding file: {node name: {attribute: value}}, plus FINN's optional
    ``"Defaults": {attribute: [value, "all" | [op types], ...]}``."""
    if not isinstance(config, dict):
        return [f"the top level must be a JSON object {{node name: {{PE, SIMD, ...}}}}, not a {type(config).__name__}"]
    problems = []
    for name, attrs in config.items():
        if not isinstance(attrs, dict):
            problems.append(f"{name!r}: must map attribute names to values, got {type(attrs).__name__} {attrs!r}")
        elif name == "Defaults":
            for key, spec in attrs.items():
                pairs_ok = isinstance(spec, list) and spec and len(spec) % 2 == 0 and all(
                    ops == "all" or (isinstance(ops, list) and all(isinstance(o, str) for o in ops))
                    for ops in spec[1::2])
                if not pairs_ok:
                    problems.append(f"Defaults {key!r}: must be [value, \"all\" or [op types], ...], got {spec!r}")
    return problems


def validate_folding(model: ModelWrapper, config: dict, source: str) -> None:
    """Reject unknown nodes and PE / SIMD values that break FINN's divisibility rules."""
    schema = folding_file_problems(config)
    if schema:
        raise CompileError(f"folding file {source} is invalid:\n  " + "\n  ".join(schema))
    names = {n.name: n for n in model.graph.node}
    problems = []
    for name, attrs in config.items():
        if name == "Defaults":
            continue
        if name not in names:
            problems.append(f"node {name!r} does not exist (nodes: {', '.join(sorted(names))})")
            continue
        inst = getCustomOp(names[name])
        op = names[name].op_type
        for key, value in attrs.items():
            if key not in ("PE", "SIMD") or not isinstance(value, int) or isinstance(value, bool) or value < 1:
                if key in ("PE", "SIMD"):
                    problems.append(f"{name} ({op}): {key} must be a positive integer, got {value!r}")
                elif key not in inst.get_nodeattr_types():
                    problems.append(f"{name} ({op}) has no attribute {key!r}")
                continue
            try:
                inst.get_nodeattr(key)
            except AttributeError:
                problems.append(f"{name} ({op}) has no {key} attribute")
                continue
            limit, what = facts_of(inst).fold_limit(inst, key)   # the layer's own rule (fpga_gan.ops.registry)
            if limit % value:
                problems.append(f"{name} ({op}): {key}={value} does not divide its {what} ({limit})")
    if problems:
        raise CompileError(f"folding file {source} is invalid:\n  " + "\n  ".join(problems))


def check_folded(model: ModelWrapper, source: str) -> None:
    """After a folding file is applied (its Defaults included): ask every layer whether its own
    folded stream shapes hold its tensors, so a PE or SIMD that fits no layer fails here, with the
    node named, and not later in RTL generation."""
    problems = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        found = []
        try:
            found += list(inst._problems()) if hasattr(inst, "_problems") else []
            ports = [("input", i, inst.get_normal_input_shape, inst.get_folded_input_shape)
                     for i, t in enumerate(node.input) if model.get_initializer(t) is None]
            ports += [("output", i, inst.get_normal_output_shape, inst.get_folded_output_shape)
                      for i in range(len(node.output))]
            for what, index, normal, folded in ports:
                n, f = tuple(normal(index)), tuple(folded(index))
                if math.prod(n) != math.prod(f):
                    found.append(f"its folded {what} {index} {f} does not hold the {n} tensor")
        except Exception as err:  # FINN's ops assert their folding rules
            found.append(str(err) or type(err).__name__)
        problems += [f"{node.name} ({node.op_type}): {p}" for p in found]
    if problems:
        raise CompileError(f"folding file {source} gives layers a PE / SIMD they cannot take:\n  "
                           + "\n  ".join(problems))


def _fastest_fitting(model: ModelWrapper, ctx) -> tuple[ModelWrapper, dict]:
    """The fastest folding that fits the board, searched over SetFolding's cycle target.

    Not a plain bisection: weight memories pack better when wider (PE x SIMD), so the slowest
    folding is not always the smallest. A geometric grid of targets finds the fastest fitting
    one, then bisection refines towards the next faster target that did not fit.
    """
    part = ctx.board.part
    slowest = resource_totals(_fold(model, 10**12, ctx), part)["cycles"]
    grid = sorted({max(1, int(slowest / 2 ** (i / 2))) for i in range(0, 2 * max(1, slowest.bit_length()))},
                  reverse=True)
    best = best_totals = failed_faster = None
    smallest_violation = None
    for target in grid:
        folded = _fold(model, target, ctx)
        totals = resource_totals(folded, part)
        violations = fit_check(totals, ctx.board)
        if violations:
            if best is not None:
                failed_faster = target
                break
            if smallest_violation is None or len(violations) <= len(smallest_violation[1]):
                smallest_violation = (totals, violations)
            continue
        best, best_totals, best_target = folded, totals, target
    if best is None:
        raise CompileError(f"no folding of this design fits {ctx.board.name}; the closest one:\n  "
                           + "\n  ".join(smallest_violation[1]))
    lo, hi = failed_faster or best_target, best_target
    while failed_faster is not None and hi - lo > max(1, hi // 50):
        mid = (lo + hi) // 2
        folded = _fold(model, mid, ctx)
        totals = resource_totals(folded, part)
        if fit_check(totals, ctx.board):
            lo = mid
        else:
            hi = mid
            if totals["cycles"] < best_totals["cycles"]:
                best, best_totals = folded, totals
    return best, best_totals


def apply_folding(model: ModelWrapper, ctx) -> ModelWrapper:
    """Fold ``model`` (the dataflow partition) per ``ctx.cfg``; raise CompileError if it cannot fit."""
    from finn.transformation.general import ApplyConfig

    cfg, board, part, clock_hz = ctx.cfg, ctx.board, ctx.board.part, ctx.clock_mhz * 1e6
    if cfg.folding_file:
        try:
            config = json.loads(Path(cfg.folding_file).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CompileError(f"folding file {cfg.folding_file} is not valid JSON: {err}") from err
        validate_folding(model, config, str(cfg.folding_file))
        try:
            model = model.transform(ApplyConfig(config))
        except (AttributeError, AssertionError, ValueError) as err:
            raise CompileError(f"folding file {cfg.folding_file} cannot be applied: {err or type(err).__name__}") \
                from err
        check_folded(model, str(cfg.folding_file))
        model = balance_memories(model, board)
    elif cfg.target_fps:
        model = _fold(model, clock_hz / cfg.target_fps, ctx)
    else:
        model, _ = _fastest_fitting(model, ctx)
    totals = resource_totals(model, part)
    fps = clock_hz / totals["cycles"]
    violations = fit_check(totals, board)
    if violations:
        _, fitting = _fastest_fitting(model, ctx)
        raise CompileError(f"the folded design does not fit {board.name}:\n  " + "\n  ".join(violations)
                           + f"\n  the largest frame rate that fits is about {clock_hz / fitting['cycles']:,.0f} FPS "
                           f"at {ctx.clock_mhz:g} MHz (use --target-fps)")
    if cfg.target_fps and fps < cfg.target_fps * 0.999:
        slowest = max(model.graph.node, key=lambda n: getCustomOp(n).get_exp_cycles())
        raise CompileError(f"no folding reaches {cfg.target_fps:g} FPS at {ctx.clock_mhz:g} MHz: the best is "
                           f"{fps:,.0f} FPS, limited by {slowest.op_type} {slowest.name!r} "
                           f"({getCustomOp(slowest).get_exp_cycles():,} cycles per frame)")
    return model
