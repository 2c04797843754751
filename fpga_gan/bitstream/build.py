"""`make bitstream`: compile, size FIFOs in simulation, hand over to FINN + Vivado, collect the artifact.

Order matters for users without Vivado (most of them, and every CI machine): all Vivado-free
work is done and written first -- the compile, the RTL with simulated FIFO depths, the FIFO
memory fit check, the FINN build directory -- and only then is Vivado looked for, so the error
that ends the run names what is missing and everything before it is reusable on the Vivado
machine. The artifact directory is assembled under ``<name>.partial`` and renamed at the end:
a ``bitstreams/<model>-<board>/`` that exists is complete.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import publish_dir, refuse_unless_ours
from ..compiler.boards import Board, fit_check, get_board
from ..compiler.errors import CompileError
from .finn_build import FINN_OUTPUT_DIR, write_finn_build
from .vivado import Vivado, VivadoMissing, find_vivado

if TYPE_CHECKING:
    from ..compiler.pipeline import CompileConfig

BRAM18_BITS = 18 * 1024
URAM_BITS = 288 * 1024
# A FIFO this small stays in LUTs (FINN's RTL FIFO with RAM_STYLE "auto"; Vivado infers LUTRAM).
LUTRAM_FIFO_BITS = 2048


@dataclass
class BitstreamPlan:
    """What the Vivado-free part produced (returned also when Vivado then turns out missing)."""

    build_dir: Path
    handover: Path
    name: str
    board: Board
    totals_with_fifos: dict


def fifo_memory(design, board: Board) -> dict[str, int]:
    """BRAM18 / URAM the sized FIFOs of ``design`` need: the compile's fit check cannot know them.

    FIFO depths exist only after simulation, and the deep skip-connection FIFOs of a U-Net can
    cost as much memory as the weights. Each FIFO is ``depth x stream width`` bits: small ones
    stay in LUTs, large ones go to URAM where the board has it, BRAM18 otherwise.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    import fpga_gan.ops  # noqa: F401

    model = ModelWrapper(str(Path(design.rtl_dir) / "model.onnx"))
    bram18 = uram = 0
    for node in model.graph.node:
        if not node.op_type.startswith("StreamingFIFO"):
            continue
        inst = getCustomOp(node)
        depth = int(design.fifo_depths.get(node.name, inst.get_nodeattr("depth")))
        width = int(inst.get_instream_width())
        bits = depth * width
        if bits <= LUTRAM_FIFO_BITS:
            continue
        if board.uram and bits > 4 * BRAM18_BITS:
            uram += math.ceil(width / 72) * math.ceil(depth / 4096)
        else:
            bram18 += _bram18_for(depth, width)
    return {"bram18": bram18, "uram": uram}


def _bram18_for(depth: int, width: int) -> int:
    """BRAM18 blocks for a depth x width memory, using the widest aspect ratio that fits."""
    best = None
    for port_width, port_depth in ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)):
        count = math.ceil(width / port_width) * math.ceil(depth / port_depth)
        best = count if best is None else min(best, count)
    return best


def sized_design(build_dir: Path, log: Callable[[str], None]):
    """The generated RTL with simulated FIFO depths, simulating (and sizing) when it is stale."""
    from ..sim.rtl import RtlDesign, partition_digest
    from ..sim.run import simulate

    rtl_dir = build_dir / "rtl"
    if (rtl_dir / "design.json").is_file():
        design = RtlDesign.load(rtl_dir)
        if design.real_fifos and design.layers is None and design.source_digest == partition_digest(build_dir):
            log(f"FIFO depths: from the simulation in {build_dir / 'sim_report.json'}")
            return design
    log("FIFO depths: sizing them in a Verilator simulation (fpga-gan sim --size-fifos)")
    report = simulate(build_dir, frames=2, size_fifos=True, log=log)
    if report["mismatches"]:
        raise CompileError(f"the RTL simulation of {build_dir} does not match the golden model "
                           f"({report['mismatches']} mismatching frames): no bitstream from a design that is wrong")
    return RtlDesign.load(rtl_dir)


def prepare(cfg: "CompileConfig") -> BitstreamPlan:
    """Every Vivado-free step of ``make bitstream``: compile, RTL + FIFO sizing, fit check, handover.

    ``cfg`` is the user's compile (board, target, clock, ``--folding``, build dir) as the CLI made
    it: the bitstream is of the design the user compiled, not of a default folding.
    """
    from ..compiler.pipeline import compile_model

    board, log = get_board(cfg.board), cfg.log
    result = compile_model(cfg)
    build_dir = result.build_dir
    if not (build_dir / "model.json").is_file():
        # a QONNX file exported outside fpga_gan: the artifact's model.json and CPU graph come from it
        from ..export.artifact import ArtifactExportError, artifact_from_qonnx

        source = Path(json.loads((build_dir / "state.json").read_text())["source"])
        try:
            artifact_from_qonnx(source, build_dir, cfg.model_name())
        except ArtifactExportError as err:
            raise CompileError(f"{source}: {err}") from err
        log(f"artifact files for {source.name}: model.json and the CPU (QCDQ) graph written")
    design = sized_design(build_dir, log)
    fifos = fifo_memory(design, board)
    totals = dict(result.report["totals"])
    totals["bram18"] += fifos["bram18"]
    totals["uram"] += fifos["uram"]
    log(f"FIFO memory: {fifos['bram18']} BRAM18, {fifos['uram']} URAM on top of the layers")
    violations = fit_check(totals, board)
    if violations:
        raise CompileError(f"{cfg.model_name()} with its simulated FIFO depths does not fit {board.name}:\n  "
                           + "\n  ".join(violations)
                           + "\nLower --target-fps (shallower skip FIFOs need a slower encoder) or pick a larger board.")
    handover = write_finn_build(build_dir, build_dir / "finn-build")
    log(f"FINN build directory: {handover}")
    return BitstreamPlan(build_dir, handover, f"{cfg.model_name()}-{board.name}", board, totals)


def run_finn(handover: Path, vivado: Vivado, log: Callable[[str], None]) -> Path:
    """Run FINN's builder (``finn build``) in the handover directory; returns its output dir."""
    finn = Path(sys.executable).with_name("finn")
    command = [str(finn if finn.is_file() else "finn"), "build", "--batch", "dataflow_build_config.json",
               "model.onnx"]
    log(f"Vivado {vivado.version}: {' '.join(command)} (in {handover}; this takes tens of minutes)")
    with open(handover / "finn_build.log", "w") as out:
        proc = subprocess.run(command, cwd=handover, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise CompileError(f"FINN's build failed (exit {proc.returncode}); see {handover / 'finn_build.log'}")
    return handover / FINN_OUTPUT_DIR


def collect_artifact(plan: BitstreamPlan, bitfile: Path, hwh: Path, out_dir: Path,
                     vivado_version: str | None) -> Path:
    """Assemble ``out_dir`` (``<name>.bit``/``.hwh``, model.json, the CPU ONNX, manifest.json)."""
    from ..runtime.manifest import write_manifest

    for path, what in ((bitfile, "bitstream"), (hwh, "hardware handoff (.hwh)")):
        if not Path(path).is_file():
            raise CompileError(f"FINN's build wrote no {what} at {path}")
    refuse_unless_ours(out_dir, "artifact", "make bitstream")
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(bitfile, tmp / f"{plan.name}.bit")
    shutil.copyfile(hwh, tmp / f"{plan.name}.hwh")
    meta = json.loads((plan.build_dir / "model.json").read_text())
    for name in meta.get("files", {}).values():
        shutil.copyfile(plan.build_dir / name, tmp / name)
    shutil.copyfile(plan.build_dir / "model.json", tmp / "model.json")
    manifest = manifest_fields(plan, meta, vivado_version)
    manifest.update(bitstream=f"{plan.name}.bit", hwh=f"{plan.name}.hwh")
    write_manifest(tmp, manifest)
    return publish_dir(tmp, out_dir, "artifact", "make bitstream")


def manifest_fields(plan: BitstreamPlan, meta: dict, vivado_version: str | None) -> dict:
    """Every manifest field except ``files`` (the writer hashes the directory)."""
    from .. import __version__
    from ..artifacts import sha256_file
    from ..sim.rtl import RtlDesign
    from ..toolchain import finn_plus_version

    design = RtlDesign.load(plan.build_dir / "rtl")
    report = json.loads((plan.build_dir / "report.json").read_text())

    def stream(prefix: str) -> dict:
        bits, epb = getattr(design, f"{prefix}_bits"), getattr(design, f"{prefix}_elems_per_beat")
        shape = getattr(design, f"{prefix}_shape")
        return {"bits": bits, "signed": getattr(design, f"{prefix}_signed"), "elems_per_beat": epb,
                "beat_bytes": (bits * epb + 7) // 8, "beats_per_frame": getattr(design, f"{prefix}_beats_per_frame"),
                "shape_nhwc": [int(v) for v in shape[1:]]}

    def tensor(spec: dict) -> dict:
        return {k: spec[k] for k in ("name", "shape", "layout", "dtype", "bits", "signed")}

    # a multi-input accelerator: one IODMA, tensor and stream per input, in graph-input order
    inputs = [{"bits": st["bits"], "signed": st["signed"], "elems_per_beat": st["elems_per_beat"],
               "beat_bytes": (st["bits"] * st["elems_per_beat"] + 7) // 8, "beats_per_frame": st["beats_per_frame"],
               "shape_nhwc": [int(v) for v in st["shape"][1:]]} for st in design.streams_in]
    many = len(inputs) > 1

    return {
        "schema_version": 1, "name": plan.name, "model": meta.get("model", plan.name),
        "model_sha256": sha256_file(plan.build_dir / "model.qonnx.onnx"),
        "board": plan.board.name, "pynq_board": plan.board.pynq_board_names[0], "part": plan.board.part,
        "clock_mhz": float(report["clock_mhz"]), "finn_plus_version": finn_plus_version(),
        "fpga_gan_version": __version__, "vivado_version": vivado_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bitstream": None, "hwh": None, "dma": {"input": [f"idma{k}" for k in range(len(inputs))] if many else "idma0", "output": "odma0"},
        "input": [tensor(t) for t in meta["inputs"]] if many else tensor(meta["inputs"][0]),
        "output": tensor(meta["outputs"][0]),
        "packing": {"order": "NHWC, channels fastest; element 0 in the least significant bits; each beat "
                             "little-endian, padded to whole bytes",
                    "input": inputs if many else stream("in"), "output": stream("out")},
        "files": {},
    }


def build_bitstream(cfg: "CompileConfig", *, out_root: Path = Path("bitstreams")) -> Path:
    """``make bitstream``: the artifact directory, or :class:`VivadoMissing` after the Vivado-free part."""
    log = cfg.log
    target = Path(out_root) / f"{cfg.model_name()}-{get_board(cfg.board).name}"
    refuse_unless_ours(target, "artifact", "make bitstream")    # before the hours of work; again at the end
    plan = prepare(cfg)
    try:
        vivado = find_vivado()
    except VivadoMissing as err:
        raise VivadoMissing(
            f"{err}\nWritten without Vivado: the compile and its report in {plan.build_dir}, the RTL with simulated "
            f"FIFO depths in {plan.build_dir / 'rtl'}, and the FINN build directory {plan.handover} (copy it to a "
            "Vivado machine and run `finn build` there, or run this command again there).") from None
    output = run_finn(plan.handover, vivado, log)
    bitfile = next(iter(sorted((output / "bitfile").glob("*.bit"))), output / "bitfile" / "finn-accel.bit")
    return collect_artifact(plan, bitfile, bitfile.with_suffix(".hwh"), Path(out_root) / plan.name, vivado.version)
