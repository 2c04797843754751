"""RTL simulation of compiled accelerators: real Verilator, real FINN RTL, frames bit-exact.

The whole-model checks here are the CI-sized ones (a small U-Net-style generator, the shipped
design generator); `make sim` runs the zoo models at full size on their boards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.pipeline import CompileConfig, compile_model
from fpga_gan.sim.run import FIFO_FILE, load_fifo_depths, save_fifo_depths, simulate



def _quiet(_message: str) -> None:
    pass


def test_small_unet_outside_the_zoo_simulates_bit_exactly_under_backpressure(tmp_path, tiny_unet_build):
    build, report = tiny_unet_build
    assert report["frames"] == 4 and report["mismatches"] == 0           # 2 throughput + 2 backpressure
    assert report["fifos"] == "sized" and (build / "fifo_depths.json").is_file()
    depths = load_fifo_depths(build)
    assert max(depths.values()) > 2                      # the skip branch needs real buffering
    # FIFOs off the skip connections are capped, and the capped design keeps the unbounded throughput
    skip, cap = set(report["skip_fifos"]), report["chain_fifo_cap"]
    assert skip and all(depths[name] <= (cap or depths[name]) for name in depths if name not in skip)
    assert report["cycles_per_frame"] <= report["unbounded_cycles_per_frame"] * 1.01
    saved = json.loads((build / "sim_report.json").read_text())
    for key in ("frames", "mismatches", "cycles_per_frame", "latency_cycles", "clock_mhz", "fps_at_clock",
                "estimated_cycles_per_frame", "simulator"):
        assert key in saved
    assert 0.5 < saved["cycles_vs_estimate"] < 2.0        # tiny frames: pipeline fill weighs more
    # the testbench really compares: a wrong expectation must be caught
    vectors = np.load(build / "sim" / "vectors.npz")
    from fpga_gan.sim.rtl import RtlDesign
    from fpga_gan.sim.verilator import build as verilator_build
    from fpga_gan.sim.verilator import run_frames

    design = RtlDesign.load(build / "rtl")
    assert design.real_fifos and design.fifo_depths == depths
    sim_build, _, cached = verilator_build(design.top, design.sources, build / "sim", log=_quiet)
    assert cached                                                          # content-hash cache hit
    wrong = vectors["expected"].copy()
    wrong[0, 0, 0] ^= 1
    run = run_frames(design.top, sim_build, vectors["inputs"], wrong, tmp_path / "negative")
    assert run.results["mismatches"] >= 1


def test_fifo_depths_of_an_earlier_compile_are_not_reused(tiny_unet_build):
    """Depths sized for another partition (or in the old, untagged format) count as never sized."""
    build, _ = tiny_unet_build
    path = build / FIFO_FILE
    original = path.read_text()
    depths = load_fifo_depths(build)
    assert depths
    try:
        path.write_text(json.dumps({**json.loads(original), "partition": "0" * 16}))
        assert load_fifo_depths(build) is None
        path.write_text(json.dumps(depths))                   # the format before the partition tag
        assert load_fifo_depths(build) is None
        save_fifo_depths(build, depths)
        assert load_fifo_depths(build) == depths
    finally:
        path.write_text(original)


@pytest.mark.slow     # 6 minutes (the zoo DCGAN's FIFO sizing builds): `make test-all`; the reference
#                       generators' simulations in `make test` cover the flow, this one the sim backend
def test_design_generator_sim_backend_equals_cpu_backend(tmp_path):
    from fpga_gan.artifacts import zoo_artifact  # noqa: F401 - compile exports the zoo artifact
    from fpga_gan.runtime import Accelerator

    build = tmp_path / "dcgan-kv260"
    compile_model(CompileConfig(model="dcgan", board="kv260", out_dir=build, log=_quiet))
    report = simulate(build, frames=2, backpressure=0.2, log=_quiet)
    assert report["mismatches"] == 0
    latents = np.random.default_rng(5).integers(-128, 128, size=(2, 64, 1, 1))
    with Accelerator.open(build, backend="cpu") as cpu, Accelerator.open(build, backend="sim") as sim:
        expected = cpu.run(latents)
        got = sim.run(latents)
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_bad_build_dirs_and_arguments_are_clear_errors(tmp_path):
    with pytest.raises(CompileError, match="not a compile build dir"):
        simulate(tmp_path, log=_quiet)
    (tmp_path / "state.json").write_text(json.dumps({"complete": False, "failed_stage": "folding"}))
    with pytest.raises(CompileError, match="did not finish \\(stage folding failed\\)"):
        simulate(tmp_path, log=_quiet)
    with pytest.raises(CompileError, match="at least 2"):
        simulate(tmp_path, frames=1, log=_quiet)


@pytest.mark.slow     # the editor's Verilator build and FIFO sizing take minutes: `make test-all`
def test_garment_editor_compiles_to_one_partition_and_simulates_bit_exactly(tmp_path):
    """The design studio's acceptance: PyTorch = QONNX = ONNX Runtime (test_export) = FINN's Python
    execution (every compile stage) = the RTL simulation, on real garments with real edits."""
    from fpga_gan.data.edits import condition_codes, edit_examples, editor_input, render_params
    from fpga_gan.runtime import Accelerator

    build = tmp_path / "editor-pynq-z2"
    result = compile_model(CompileConfig(model="editor", board="pynq-z2", out_dir=build, log=_quiet))
    report = result.report          # (the compiler refuses a graph that is not one dataflow partition)
    assert report["fits"] and all(n["op_type"].endswith("_rtl") for n in report["nodes"])
    assert all(s["bit_exact"] for s in report["verification"])     # FINN's Python execution = QONNX
    report = simulate(build, frames=2, backpressure=0.2, log=_quiet)
    assert report["mismatches"] == 0
    examples = edit_examples(8, per_type=1)[:2]
    source = np.stack([render_params(src) for _, src, _, _ in examples]).transpose(0, 3, 1, 2)
    x = editor_input(source, np.stack([condition_codes(e) for _, _, e, _ in examples]))
    with Accelerator.open(build, backend="cpu") as cpu, Accelerator.open(build, backend="sim") as sim:
        expected = cpu.run(x)
        got = sim.run(x)
    assert got.shape == expected.shape and np.array_equal(got, expected)
