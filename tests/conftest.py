"""Shared fixtures: a small synthetic data set and exported zoo artifacts, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    from fpga_gan.data import make_dataset

    root = tmp_path_factory.mktemp("data") / "synth"
    make_dataset(root, 48, seed=7, test_fraction=0.25, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def zoo_artifacts(tmp_path_factory) -> dict[str, Path]:
    """Every zoo model exported (no cross-check here; tests do that themselves)."""
    from fpga_gan.artifacts import export_weights
    from fpga_gan.models.zoo import ZOO, zoo_path

    root = tmp_path_factory.mktemp("artifacts")
    out = {}
    for name in ZOO:
        export_weights(zoo_path(name), root / name, name)
        out[name] = root / name
    return out


def _quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="session")
def tiny_unet_build(tmp_path_factory) -> tuple[Path, dict]:
    """A generator outside the zoo, compiled for ultra96 and simulated (FIFOs sized): the build dir
    and its sim report. Shared because a Verilator build of it is the slow part of several tests."""
    from fpga_gan.compiler.pipeline import CompileConfig, compile_model
    from fpga_gan.sim.run import simulate

    from .test_compiler import export_tiny_unet

    root = tmp_path_factory.mktemp("tiny_unet")
    path = export_tiny_unet(root / "tiny_unet.onnx")
    build = root / "build"
    compile_model(CompileConfig(model=str(path), board="ultra96", out_dir=build, log=_quiet))
    return build, simulate(build, frames=2, backpressure=0.3, log=_quiet)
