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
