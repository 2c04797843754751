"""Shared helper: build an RTL top with Verilator and run a cocotb testbench from sim/tests."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TB_DIR = REPO / "sim" / "tests"


def run_cocotb(sources: list[Path], toplevel: str, test_module: str, parameters: dict, build_dir: Path,
               extra_env: dict[str, str] | None = None) -> None:
    """Build (each parameter set in its own directory) and run; fails the test on any cocotb failure."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel, parameters=parameters,
                 build_dir=str(build_dir), always=True, build_args=["-Wno-fatal"])
    old = dict(os.environ)
    os.environ.update(extra_env or {})
    try:
        results = runner.test(hdl_toplevel=toplevel, test_module=test_module, test_dir=str(TB_DIR),
                              build_dir=str(build_dir), results_xml=str(build_dir / "results.xml"))
    finally:
        os.environ.clear()
        os.environ.update(old)
    from cocotb_tools.runner import get_results

    tests, fails = get_results(results)
    assert tests > 0 and fails == 0, f"{fails} of {tests} cocotb tests failed ({results})"
