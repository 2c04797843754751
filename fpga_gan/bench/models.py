"""Models the benchmark compiles that are not in the zoo: the classic DCGAN-64, and a tiny DCGAN
for the harness's own test.

Why random weights: the classic DCGAN (nz 100, ngf 64) is the reference point of the published
DCGAN accelerators, but it is not trained here. Folding, resource estimates and cycle counts do not
depend on weight values, so a W4A4 export with seeded random weights compiles to the same design.
"""

from __future__ import annotations

from pathlib import Path

from .config import CLASSIC_DCGAN, TINY_DCGAN

__all__ = ["GENERATED_DCGANS", "export_dcgan", "resolve_model"]

# name -> DCGANGenerator arguments; W4A4 (io 8 bits) like the zoo's, seeded random weights.
GENERATED_DCGANS: dict[str, dict[str, int]] = {
    CLASSIC_DCGAN: {"nz": 100, "ngf": 64, "seed": 0},
    TINY_DCGAN: {"nz": 8, "ngf": 2, "seed": 0},
}


def export_dcgan(name: str, out_dir: Path) -> Path:
    """``out_dir/<name>.qonnx.onnx`` for a :data:`GENERATED_DCGANS` entry, exported once, then reused.

    Reused rather than re-exported because the compiler caches its stages by the file's bytes:
    a second export that differed in any byte would throw away minutes of cached compile.
    """
    path = Path(out_dir) / f"{name}.qonnx.onnx"
    if path.is_file():
        return path
    import torch
    from brevitas.export import export_qonnx

    from ..models.dcgan import DCGANGenerator
    from ..models.layers import QuantSpec

    cfg = GENERATED_DCGANS[name]
    torch.manual_seed(cfg["seed"])
    model = DCGANGenerator(nz=cfg["nz"], ngf=cfg["ngf"], spec=QuantSpec(weight_bits=4, act_bits=4)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.onnx")
    export_qonnx(model, torch.randn(1, cfg["nz"], 1, 1), export_path=str(tmp), dynamo=False)
    tmp.replace(path)
    return path


def resolve_model(model: str, models_dir: Path) -> str:
    """What the compiler takes for a case's ``model``: a zoo name or file as is, or the exported
    file of a generated model."""
    if model in GENERATED_DCGANS:
        return str(export_dcgan(model, models_dir))
    return model
