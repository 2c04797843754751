"""Artifact directories for the zoo models: exported on first use, re-exported when weights change.

The runtime only reads artifact directories, so the user-facing commands (``tryon``, ``design``,
``demo``) export a zoo model once into ``build/artifacts/<name>/`` and reuse it; the sha256 of the
weights file is recorded in ``model.json`` so stale exports are noticed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ._files import publish_dir, refuse_unless_ours, sha256_file

__all__ = ["DEFAULT_ARTIFACT_ROOT", "export_weights", "input_shape_for", "sha256_file", "zoo_artifact"]

DEFAULT_ARTIFACT_ROOT = Path("build") / "artifacts"


def input_shape_for(model) -> tuple[int, ...]:
    """The batch-1 input shape of a generator: (1, 24, H, W) for try-on, (1, nz, 1, 1) for DCGAN."""
    from .models import DCGANGenerator

    if isinstance(model, DCGANGenerator):
        return (1, model.nz, 1, 1)
    return (1, model.in_channels, *model.image_size)


def export_weights(weights: Path, out_dir: Path, name: str, check_inputs: int = 0, seed: int = 0):
    """Export a generator checkpoint to ``out_dir``; optionally cross-check the backends.

    ``out_dir`` is written as a hidden sibling and renamed into place; an existing ``out_dir`` is
    replaced only if it is an artifact fpga_gan wrote (its marker), never a user's directory.
    """
    import numpy as np

    from .export import cross_check, export_generator
    from .models.zoo import load_generator

    out_dir = Path(out_dir)
    refuse_unless_ours(out_dir, "artifact", "export -o")     # before the (slow) export, and again at the end
    model = load_generator(weights)
    shape = input_shape_for(model)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        result = export_generator(model, name, shape, tmp,
                                  extra={"weights_sha256": sha256_file(weights),
                                         "weights_file": weights.name, "exporter": EXPORTER_VERSION})
        report = None
        if check_inputs:
            spec = result.spec["inputs"][0]
            lo, hi = spec["range"]
            codes = np.random.default_rng(seed).integers(lo, hi + 1, (check_inputs, *shape[1:]))
            report = cross_check(model, result, codes.astype(spec["dtype"]))
        publish_dir(tmp, out_dir, "artifact", "export -o")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.out_dir = out_dir
    return result, report


#: Bumped when an export of the same weights changes: a zoo artifact of another version is made again.
#: 2: 8-bit layers that could saturate ONNX Runtime's int8 kernel on CPUs without VNNI run in float.
EXPORTER_VERSION = 2


def zoo_artifact(name: str, root: Path = DEFAULT_ARTIFACT_ROOT) -> Path:
    """The artifact directory of a zoo model, exporting it if missing or stale."""
    from .models.zoo import ZooError, zoo_path

    weights = zoo_path(name)
    if not weights.is_file():
        raise ZooError(f"the shipped weights for {name!r} are missing: {weights}")
    out = Path(root) / name
    meta = out / "model.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
            if (isinstance(data, dict) and data.get("weights_sha256") == sha256_file(weights)
                    and data.get("exporter") == EXPORTER_VERSION):
                return out
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    export_weights(weights, out, name)
    return out
