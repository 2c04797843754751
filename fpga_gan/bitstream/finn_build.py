"""The handover to FINN's builder: a directory that ``finn build`` runs on a Vivado machine.

FINN's builder cannot even be imported without Vivado, so everything Vivado-free happens in
fpga_gan first (GAN passes, partition, specialization, folding, FIFO sizing in Verilator) and
this directory hands the result over in FINN's own terms:

``model.onnx``
    the QONNX model as Brevitas exported it (FINN users start from this file too);
``custom_steps.py``
    imports :func:`step_fpga_gan_frontend`, which runs fpga_gan's compile stages inside FINN's
    flow and returns the folded, all-RTL dataflow partition (so FINN's flow gets the GAN passes);
``folding_config.json``
    the folding fpga_gan chose, in FINN's ``ApplyConfig`` format;
``fifo_config.json``
    the FIFO depths measured in simulation, keyed by the node names FINN's FIFO insertion
    gives (written when a sized simulation exists; otherwise FINN sizes the FIFOs itself);
``dataflow_build_config.json``
    a ``DataflowBuildConfig`` (board, part, clock, steps, outputs) that validates against
    finn-plus's own class;
``fpga_gan_build.json``
    what fpga_gan needs back when FINN calls the frontend step (board, model name).

Run it with ``cd DIR && finn build dataflow_build_config.json model.onnx``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fpga_gan.ops  # noqa: F401 - registers our *_rtl layers in FINN's RTL domain (FINN's steps need them)

from .._files import publish_dir, refuse_unless_ours
from ..compiler.boards import Board, get_board
from ..compiler.errors import CompileError

CONFIG_FILE = "dataflow_build_config.json"
FOLDING_FILE = "folding_config.json"
FIFO_CONFIG_FILE = "fifo_config.json"
SIDECAR_FILE = "fpga_gan_build.json"
FINN_OUTPUT_DIR = "output"
FINN_BUILD_KIND = "finn-build"      # the kind in our ownership marker: what a rerun may replace

# The folding attributes fpga_gan sets (FINN's step_apply_folding_config list, less the FIFO
# depths, which travel in fifo_config.json).
FOLDING_ATTRS = ("PE", "SIMD", "parallel_window", "ram_style", "ram_style_thresholds", "resType", "mac_resource",
                 "mem_mode", "runtime_writeable_weights", "depth_trigger_uram", "depth_trigger_bram")

FRONTEND_STEP = "custom_steps.step_fpga_gan_frontend"
# After the frontend: FINN's own steps, from applying the (same) folding to the bitfile and driver.
FINN_STEPS = ["step_apply_folding_config", "step_generate_estimate_reports", "step_generate_hardware",
              "step_create_stitched_ip", "step_synthesize_bitfile", "step_make_driver", "step_deployment_package"]

CUSTOM_STEPS_PY = '''"""fpga_gan's steps for FINN's builder (written by `fpga-gan finn-build`; FINN imports this
module because dataflow_build_config.json names `custom_steps.step_fpga_gan_frontend`)."""

from fpga_gan.bitstream.finn_build import step_fpga_gan_frontend  # noqa: F401 - resolved by FINN by name
'''

README = """# FINN build directory for {name}

Written by `fpga-gan finn-build` (fpga_gan {version}) for {board} ({part}) at {clock:g} MHz.
Everything Vivado-free is done: the GAN passes, the folding ({fps:,.0f} FPS estimated) and {fifo_note}.

On a machine with Vivado {vivado} and finn-plus {finn_version} (in the same environment as fpga_gan):

    cd {dirname}
    finn build {config} model.onnx

FINN writes `{output}/` (bitfile, driver, deployment package); `fpga-gan bitstream` runs this
for you and collects the artifact into `bitstreams/{name}/`.
"""


def folded_partition(build_dir: Path):
    """The folded all-RTL dataflow partition of a finished compile."""
    from ..sim.rtl import partition_model

    _, child, _ = partition_model(Path(build_dir))
    return child


def folding_config(model) -> dict:
    """The folding of ``model`` in FINN's ApplyConfig format (``Defaults`` plus one entry per node)."""
    from finn.util.config import extract_model_config

    config = extract_model_config(model, None, FOLDING_ATTRS)
    return {name: attrs for name, attrs in config.items() if name == "Defaults" or attrs}


def finn_fifo_names(model, part: str) -> list[str]:
    """The FIFO names FINN's step_set_fifo_depths gives when it applies a FIFO config file.

    It inserts DWCs and FIFOs, specializes them and names nodes with
    GiveUniqueNodeNamesRecursive; replaying that here is what lets the depths measured in our
    simulation be keyed by the names FINN will look up.
    """
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.transformation.general import GiveReadableTensorNames

    model = model.transform(InsertDWC()).transform(InsertFIFO(create_shallow_fifos=True))
    model = model.transform(SpecializeLayers(part)).transform(GiveUniqueNodeNamesRecursive())
    model = model.transform(GiveReadableTensorNames())
    return [n.name for n in model.graph.node if n.op_type.startswith("StreamingFIFO")], \
        [n.op_type for n in model.graph.node]


def fifo_config(build_dir: Path, model, part: str) -> dict | None:
    """FINN's fifo_config.json from the depths of the sized simulation, or None without one."""
    from ..sim.rtl import RtlDesign, partition_digest

    rtl_dir = Path(build_dir) / "rtl"
    if not (rtl_dir / "design.json").is_file():
        return None
    design = RtlDesign.load(rtl_dir)
    if not design.real_fifos or design.layers is not None or design.source_digest != partition_digest(build_dir):
        return None
    from qonnx.core.modelwrapper import ModelWrapper

    ours = ModelWrapper(str(rtl_dir / "model.onnx"))
    names, op_types = finn_fifo_names(model, part)
    if op_types != [n.op_type for n in ours.graph.node] or len(names) != len(design.fifo_names):
        raise CompileError(f"the simulated design in {rtl_dir} does not have the layers FINN's FIFO insertion gives; "
                           "simulate again (fpga-gan sim --size-fifos)")
    depths = {finn: int(design.fifo_depths[sim]) for finn, sim in zip(names, design.fifo_names)}
    return {"fifo_depths": depths, "impl_style": {name: "rtl" for name in names},
            "source": f"fpga_gan Verilator simulation of {Path(build_dir).name} (peak fill + 10%)"}


def dataflow_build_config(board: Board, clock_mhz: float, fifo_sized: bool) -> dict:
    """The DataflowBuildConfig fields of the handover (paths relative to the directory)."""
    config = {
        "output_dir": FINN_OUTPUT_DIR,
        "synth_clk_period_ns": round(1000.0 / clock_mhz, 6),
        "board": board.finn_board,
        "fpga_part": board.part,
        "shell_flow_type": board.shell_flow_type,
        "folding_config_file": FOLDING_FILE,
        "auto_fifo_depths": not fifo_sized,
        "minimize_bit_width": False,           # fpga_gan already minimised widths; keep the simulated design
        "steps": [FRONTEND_STEP, *FINN_STEPS],
        "generate_outputs": ["estimate_reports", "stitched_ip", "bitfile", "pynq_driver", "deployment_package"],
        "save_intermediate_models": True,
    }
    if fifo_sized:
        config["fifo_config_file"] = FIFO_CONFIG_FILE
    return config


def write_finn_build(build_dir: Path, out_dir: Path) -> Path:
    """Write the handover directory for the compile in ``build_dir``; returns ``out_dir``.

    Written into ``out_dir.partial`` and renamed, so an interrupted run never leaves a
    directory that looks complete.
    """
    from .. import __version__
    from ..toolchain import finn_plus_version
    from .vivado import SUPPORTED_VIVADO

    build_dir, out_dir = Path(build_dir), Path(out_dir)
    report = json.loads((build_dir / "report.json").read_text())
    state = json.loads((build_dir / "state.json").read_text())
    board = get_board(state["board"])
    model = folded_partition(build_dir)
    fifos = fifo_config(build_dir, model, board.part)
    refuse_unless_ours(out_dir, FINN_BUILD_KIND, "finn-build")
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(build_dir / "model.qonnx.onnx", tmp / "model.onnx")
    (tmp / "custom_steps.py").write_text(CUSTOM_STEPS_PY)
    (tmp / FOLDING_FILE).write_text(json.dumps(folding_config(model), indent=2))
    if fifos is not None:
        (tmp / FIFO_CONFIG_FILE).write_text(json.dumps(fifos, indent=2))
    config = dataflow_build_config(board, float(report["clock_mhz"]), fifos is not None)
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    (tmp / SIDECAR_FILE).write_text(json.dumps({"model": state.get("model"), "board": board.name,
                                                "clock_mhz": report["clock_mhz"]}, indent=2))
    (tmp / "README.md").write_text(README.format(
        name=f"{build_dir.name}", version=__version__, board=board.name, part=board.part,
        clock=float(report["clock_mhz"]), fps=report["totals"]["fps"], dirname=out_dir.name, config=CONFIG_FILE,
        fifo_note=("the FIFO depths measured in Verilator" if fifos else
                   "no FIFO sizing yet (FINN sizes the FIFOs itself; `fpga-gan sim` first to use ours)"),
        vivado=" or ".join(SUPPORTED_VIVADO), finn_version=finn_plus_version(), output=FINN_OUTPUT_DIR))
    return publish_dir(tmp, out_dir, FINN_BUILD_KIND, "finn-build")


def load_build_config(directory: Path):
    """Parse ``dataflow_build_config.json`` with finn-plus's own DataflowBuildConfig (validation)."""
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    return DataflowBuildConfig.from_json((Path(directory) / CONFIG_FILE).read_text())


def step_fpga_gan_frontend(model, cfg):
    """FINN build step: fpga_gan's compile stages, from the QONNX model to the folded partition.

    Runs the same pipeline as ``fpga-gan compile`` (every stage checked bit-exact on a saved
    input), with the folding of ``folding_config.json``, in ``OUTPUT/fpga_gan_compile``; returns the
    all-RTL dataflow partition, which is what FINN's later steps (folding, hardware generation,
    stitching, synthesis) work on.
    """
    from ..compiler.pipeline import CompileConfig, compile_model

    here = Path(cfg.folding_config_file).resolve().parent if cfg.folding_config_file else Path.cwd()
    sidecar = json.loads((here / SIDECAR_FILE).read_text())
    out = Path(cfg.output_dir) / "fpga_gan_compile"
    out.mkdir(parents=True, exist_ok=True)
    source = out / "source.qonnx.onnx"
    model.save(str(source))
    result = compile_model(CompileConfig(model=str(source), board=sidecar["board"],
                                         clock_mhz=float(sidecar["clock_mhz"]),
                                         folding_file=here / FOLDING_FILE, out_dir=out / "build"))
    from ..sim.rtl import partition_model

    parent, child, _ = partition_model(result.build_dir)
    if cfg.save_intermediate_models:
        # where FINN's own partition step leaves it (its verification reads the parent from there)
        intermediate = Path(cfg.output_dir) / "intermediate_models"
        intermediate.mkdir(parents=True, exist_ok=True)
        parent.save(str(intermediate / "dataflow_parent.onnx"))
    return child
