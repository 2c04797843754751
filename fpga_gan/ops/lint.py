"""`make lint`: Verilator lint of every piece of RTL fpga_gan owns.

What we own is more than the files in ``hw/rtl``: each op's FINN wrapper exists only once
``generate_hdl`` has filled its template, so the wrappers are generated here for a set of
representative configurations (odd widths, several streams, SIMD > 1) and linted with their
cores (every op's ``LINT_CASES``). Each file is linted in the language its extension says:
``.sv`` as SystemVerilog, ``.v`` as Verilog-2005. The Verilator stand-ins in ``sim/rtl`` for
finn-rtllib files are linted against the finn-rtllib package they need. Every file must pass ``-Wall`` with no waivers on the command line.

    python -m fpga_gan.ops.lint [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._base import DOMAIN, rtl_dir
from .registry import registered_ops

FPGAPART = "xc7z020clg400-1"
SIM_RTL = Path(__file__).resolve().parents[2] / "sim" / "rtl"


@dataclass(frozen=True)
class WrapperCase:
    """One configuration of an op whose generated wrapper is linted (the tests use them too)."""

    name: str
    op_type: str
    in_shapes: list[tuple[int, ...]]
    out_shapes: list[tuple[int, ...]]
    dtype: str
    attrs: dict


def wrapper_cases() -> list[WrapperCase]:
    """Every registered op's ``LINT_CASES``, for its ``*_rtl`` backend."""
    import fpga_gan.ops  # noqa: F401 - imports (registers) every op module

    return [WrapperCase(c.name, f"{op.__name__}_rtl", c.in_shapes, c.out_shapes, c.dtype, c.attrs)
            for op in registered_ops() for c in op.LINT_CASES]


WRAPPER_CASES = wrapper_cases()


def language_args(files) -> list[str]:
    """Verilator reads every file as SystemVerilog unless told otherwise: ``.v`` files are
    Verilog-2005 (what Vivado reads them as), ``.sv`` SystemVerilog, as their extension says."""
    return ["+1364-2005ext+v"] if any(str(f).endswith(".v") for f in files) else []


@dataclass
class LintResult:
    name: str
    files: list[Path]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def lint(files: list[Path], top: str, *extra: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` of ``files`` with ``top`` as the top module, each file in
    the language its extension says (:func:`language_args`)."""
    from ..toolchain import verilator_env

    library = ["-y", str(rtl_dir()), "+libext+.sv"]    # modules a core instantiates, found by name
    return subprocess.run(["verilator", "--lint-only", "-Wall", *language_args(files), *library, "--top-module", top,
                           *extra, *map(str, files)],
                          check=False, env=verilator_env(), capture_output=True, text=True, timeout=120)


def single_node_model(case: WrapperCase):
    """A one-node graph holding the op of ``case`` (what generate_hdl needs to fill its template)."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, s) for i, s in enumerate(case.in_shapes)]
    outs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, s) for i, s in enumerate(case.out_shapes)]
    node = helper.make_node(case.op_type, [t.name for t in ins], [t.name for t in outs], domain=DOMAIN,
                            backend="fpgadataflow", inputDataType=case.dtype, name=f"{case.op_type}_0",
                            **case.attrs)
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", ins, outs)))
    for t in ins:
        model.set_tensor_datatype(t.name, DataType[case.dtype])
    return model


def generate_wrapper(case: WrapperCase, out_dir: Path):
    """Fill the op's template for ``case`` into ``out_dir``; returns the op instance."""
    from qonnx.custom_op.registry import getCustomOp

    model = single_node_model(case)
    op = getCustomOp(model.graph.node[0])
    op.set_nodeattr("code_gen_dir_ipgen", str(out_dir))
    op.generate_hdl(model, FPGAPART, 10.0)
    return op


def lint_all(work_dir: Path) -> list[LintResult]:
    """Lint the cores, the generated wrappers and the simulation stand-ins."""
    from finn.util.settings import get_settings, initialize_dummy_settings

    initialize_dummy_settings()
    results = []
    for core in sorted([*rtl_dir().glob("*.sv"), *rtl_dir().glob("*.v")]):
        if core.stem.endswith("_template"):
            continue                                  # linted as filled wrappers below
        res = lint([core], core.stem)
        results.append(LintResult(f"hw/rtl/{core.name}", [core], res.returncode, res.stdout + res.stderr))
    for case in WRAPPER_CASES:
        op = generate_wrapper(case, work_dir / case.name)
        files = [Path(f) for f in op.get_rtl_file_list(abspath=True)]
        res = lint(files, op.get_nodeattr("gen_top_module"))
        results.append(LintResult(f"{case.op_type} wrapper ({case.name})", files, res.returncode,
                                  res.stdout + res.stderr))
    rtllib = Path(get_settings().finn_rtllib)
    stand_ins = {
        "fifo.sv": ([SIM_RTL / "fifo.sv"], ["-GDEPTH=16", "-GDATA_WIDTH=8"]),
        "add_multi.sv": ([SIM_RTL / "finn_rtllib.vlt", rtllib / "mvu" / "mvu_pkg.sv", SIM_RTL / "add_multi.sv"],
                         ["-GN=4", "-GDEPTH=2", "-GARG_WIDTH=8", "-GARG_LO=-128", "-GARG_HI=127"]),
    }
    for name, (files, params) in stand_ins.items():
        res = lint(files, Path(name).stem, "-DFINN_SIMULATION", *params)
        results.append(LintResult(f"sim/rtl/{name}", files, res.returncode, res.stdout + res.stderr))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the generated wrappers here instead of a temp dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fpga_gan_lint_") as tmp:
        work = args.keep or Path(tmp)
        results = lint_all(work)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'}  {r.name}")
        if not r.ok:
            print("      " + r.output.strip().replace("\n", "\n      "))
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} lint clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
