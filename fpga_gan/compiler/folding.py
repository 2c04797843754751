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

from .boards import fit_check
from .errors import CompileError

__all__ = ["apply_folding", "validate_folding", "resource_totals"]


def resource_totals(model: ModelWrapper, fpgapart: str) -> dict:
    totals = {"lut": 0.0, "bram18": 0.0, "uram": 0.0, "dsp": 0.0, "cycles": 0}
    for node in model.graph.node:
        inst = getCustomOp(node)
        res = inst.node_res_estimation(fpgapart)
        totals["lut"] += res.get("LUT", 0)
        totals["bram18"] += res.get("BRAM_18K", 0)
        totals["uram"] += res.get("URAM", 0)
        totals["dsp"] += res.get("DSP", 0)
        totals["cycles"] = max(totals["cycles"], int(inst.get_exp_cycles()))
    return totals


def balance_memories(model: ModelWrapper, board) -> ModelWrapper:
    """Move the largest MVAU weight memories to UltraRAM while block RAM is over budget.

    Boards with URAM (zcu104, kv260) have more weight storage there than in BRAM; FINN keeps
    weights in BRAM unless a layer's ``ram_style`` says "ultra".
    """
    if board.uram <= 0:
        return model
    mvaus = [n for n in model.graph.node if n.op_type.startswith("MVAU")]
    mvaus.sort(key=lambda n: getCustomOp(n).bram_estimation(board.part), reverse=True)
    for node in mvaus:
        totals = resource_totals(model, board.part)
        if totals["bram18"] <= board.bram18:
            break
        inst = getCustomOp(node)
        inst.set_nodeattr("mem_mode", "internal_decoupled")
        inst.set_nodeattr("ram_style", "ultra")
        if resource_totals(model, board.part)["uram"] > board.uram:
            inst.set_nodeattr("ram_style", "auto")
            break
    return model


def _fold(model: ModelWrapper, target_cycles: int, ctx) -> ModelWrapper:
    from finn.transformation.fpgadataflow.set_folding import SetFolding

    model = model.transform(SetFolding(target_cycles_per_frame=max(1, int(target_cycles)),
                                       mvau_wwidth_max=ctx.cfg.mvau_wwidth_max, two_pass_relaxation=True))
    return balance_memories(model, ctx.board)


def validate_folding(model: ModelWrapper, config: dict, source: str) -> None:
    """Reject unknown nodes and PE / SIMD values that break FINN's divisibility rules."""
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
            if key not in ("PE", "SIMD") or not isinstance(value, int) or value < 1:
                if key in ("PE", "SIMD"):
                    problems.append(f"{name} ({op}): {key} must be a positive integer, got {value!r}")
                continue
            try:
                inst.get_nodeattr(key)
            except AttributeError:
                problems.append(f"{name} ({op}) has no {key} attribute")
                continue
            if op.startswith("MVAU"):
                limit = inst.get_nodeattr("MH" if key == "PE" else "MW")
                what = "output channels" if key == "PE" else "input channels x k x k"
            elif op.startswith("Thresholding") or op.startswith("StreamingConcat") or op.startswith("Crop"):
                limit = inst.get_normal_input_shape()[-1]
                what = "channels"
            elif op.startswith("ConvolutionInputGenerator") or op.startswith("FMPadding"):
                limit = inst.get_normal_input_shape()[-1]
                what = "input channels"
            else:
                limit = inst.get_normal_input_shape()[-1]
                what = "channels"
            if limit % value:
                problems.append(f"{name} ({op}): {key}={value} does not divide its {what} ({limit})")
    if problems:
        raise CompileError(f"folding file {source} is invalid:\n  " + "\n  ".join(problems))


def _fastest_fitting(model: ModelWrapper, ctx) -> tuple[ModelWrapper, dict]:
    """Bisection on the cycle target: the smallest one whose folding fits the board."""
    part = ctx.board.part
    slow = _fold(model, 10**9, ctx)
    slow_totals = resource_totals(slow, part)
    if fit_check(slow_totals, ctx.board):
        raise CompileError(f"even fully folded (PE = SIMD = 1) the design does not fit {ctx.board.name}:\n  "
                           + "\n  ".join(fit_check(slow_totals, ctx.board)))
    lo, hi = 1, slow_totals["cycles"]                       # lo may not fit, hi fits
    best, best_totals = slow, slow_totals
    while hi - lo > max(1, hi // 50):
        mid = int(math.sqrt(lo * hi))
        folded = _fold(model, mid, ctx)
        totals = resource_totals(folded, part)
        if fit_check(totals, ctx.board):
            lo = mid
        else:
            hi, best, best_totals = min(mid, totals["cycles"]), folded, totals
    return best, best_totals


def apply_folding(model: ModelWrapper, ctx) -> ModelWrapper:
    """Fold ``model`` (the dataflow partition) per ``ctx.cfg``; raise CompileError if it cannot fit."""
    from finn.transformation.general import ApplyConfig

    cfg, board, part, clock_hz = ctx.cfg, ctx.board, ctx.board.part, ctx.clock_mhz * 1e6
    if cfg.folding_file:
        try:
            config = json.loads(Path(cfg.folding_file).read_text())
        except json.JSONDecodeError as err:
            raise CompileError(f"folding file {cfg.folding_file} is not valid JSON: {err}") from err
        validate_folding(model, config, str(cfg.folding_file))
        model = balance_memories(model.transform(ApplyConfig(config)), board)
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
