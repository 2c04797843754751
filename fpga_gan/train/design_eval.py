"""How good the design studio is: the garment editor against rendered targets, the design
generator against rendered garments, both judged by the attribute classifier.

The networks run in PyTorch here: their output codes equal those of every other backend (the
bit-exactness contract; ``tests/test_onnx_exact.py`` and the simulations check it), and PyTorch is
the fastest way to push a thousand garments through on a CPU.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.design import design_codes, sample_designs
from ..models.attributes import GarmentAttributeNet, judge_edit, read_attributes
from .attributes import render_all

#: Garment seeds of the reference set the Frechet distance compares against (no model trained on them).
REFERENCE_SEED = 99


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D): the FID formula."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():    # singular product: the usual regularisation
        eps = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def per_image_ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SSIM of each uint8 NCHW image pair (scikit-image, as :func:`psnr_ssim`)."""
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(np.moveaxis(p, 0, -1), np.moveaxis(t, 0, -1), channel_axis=-1,
                                           data_range=255) for p, t in zip(pred, target)])


def evaluate_editor(model: torch.nn.Module | None, classifier: GarmentAttributeNet, data_root: str | Path,
                    limit: int | None = None) -> dict[str, Any]:
    """SSIM to the rendered target and the classifier's verdict, overall and per edit type.

    ``model`` None scores the rendered targets themselves: the ceiling, and the check that the
    classifier's tolerances are fair.
    """
    from ..data.edits import edit_type, editor_input, load_edit_arrays
    from ..data.synth import GarmentParams
    from .tryon import generate_codes

    from ..data.edits import CONDITION_CHANNELS

    if model is not None and getattr(model, "in_channels", None) != 3 + CONDITION_CHANNELS:
        raise ValueError(f"not a garment editor: it takes {getattr(model, 'in_channels', '?')} input planes, "
                         f"the editor {3 + CONDITION_CHANNELS} (garment + edit condition)")
    arrays = load_edit_arrays(data_root, "test", limit=limit)
    target = arrays["target"]
    pred = target if model is None else generate_codes(model, editor_input(arrays["source"], arrays["condition"]))
    ssim = per_image_ssim(pred, target)
    readings, _ = read_attributes(classifier, pred)
    by_type: dict[str, dict[str, list]] = defaultdict(lambda: {"ssim": [], "requested": [], "untouched": []})
    untouched_attr: dict[str, list[bool]] = defaultdict(list)
    for rec, reading, s in zip(arrays["records"], readings, ssim):
        source = GarmentParams(**{**rec["source"], "colour": tuple(rec["source"]["colour"]),
                                  "colour2": tuple(rec["source"]["colour2"])})
        goal = GarmentParams(**{**rec["target"], "colour": tuple(rec["target"]["colour"]),
                                "colour2": tuple(rec["target"]["colour2"])})
        verdict = judge_edit(reading, source, goal, rec["edit"])
        row = by_type[edit_type(rec["edit"])]      # from the edit itself, whatever the file says
        row["ssim"].append(float(s))
        row["requested"].append(verdict["requested_ok"])
        row["untouched"].extend(verdict["untouched"].values())
        for attr, ok in verdict["untouched"].items():
            untouched_attr[attr].append(ok)

    def summary(rows: list[dict[str, list]]) -> dict[str, Any]:
        cat = {k: [v for r in rows for v in r[k]] for k in ("ssim", "requested", "untouched")}
        return {"edits": len(cat["ssim"]), "ssim": float(np.mean(cat["ssim"])),
                "requested_found": float(np.mean(cat["requested"])),
                "untouched_kept": float(np.mean(cat["untouched"])) if cat["untouched"] else None}

    return {"overall": summary(list(by_type.values())),
            "by_type": {t: summary([by_type[t]]) for t in sorted(by_type)},
            "untouched_by_attribute": {a: float(np.mean(v)) for a, v in sorted(untouched_attr.items())}}


def reference_features(classifier: GarmentAttributeNet, n: int) -> np.ndarray:
    """Classifier features of ``n`` rendered garments from the world's prior (the FID reference)."""
    garments = sample_designs(n, REFERENCE_SEED)
    return read_attributes(classifier, render_all(garments, desc="render reference garments"))[1]


def sample_images(model: torch.nn.Module, n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples (uint8 NCHW) of a design generator: the design space's prior for the
    designer, N(0, 1) latents for a generator with any other latent size (the first DCGAN)."""
    from ..app import design_latents
    from ..data.design import DESIGN_CODE_SIZE
    from .designer import generate

    if not hasattr(model, "nz"):
        raise ValueError(f"not a design generator: a {type(model).__name__} takes no latent vector")
    if model.nz == DESIGN_CODE_SIZE:
        codes = design_codes(sample_designs(n, seed))
    else:
        codes = design_latents(n, model.nz, seed)
    return generate(model, codes)


def evaluate_samples(images: np.ndarray | None, classifier: GarmentAttributeNet, reference: np.ndarray,
                     n: int = 1000) -> dict[str, Any]:
    """Share of samples read as a garment kind with confidence >= 0.8, kinds and patterns seen, and
    the Frechet distance of their classifier features to rendered garments. ``images`` None scores
    ``n`` fresh renders (the floor of the distance)."""
    if images is None:
        images = render_all(sample_designs(n, REFERENCE_SEED + 1), desc="render garments")
    readings, features = read_attributes(classifier, images)
    confident = [r for r in readings if r.is_garment and r.kind_confidence >= 0.8]
    return {"samples": len(readings), "confident_garment": len(confident) / len(readings),
            "kinds": sorted({r.kind for r in confident}), "patterns": sorted({r.pattern for r in confident}),
            "frechet_distance": frechet_distance(features, reference)}


def markdown_report(report: dict[str, Any]) -> str:
    """The ``design evaluate`` report as Markdown tables (README and model cards quote them)."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = ["### Garment editor (held-out edits)", "",
             "| model | edits | SSIM | requested attribute found | untouched attributes kept |",
             "|---|---|---|---|---|"]
    for name, r in report["editor"].items():
        o = r["overall"]
        lines.append(f"| {name} | {o['edits']} | {o['ssim']:.4f} | {pct(o['requested_found'])} | "
                     f"{pct(o['untouched_kept'])} |")
    types = sorted({t for r in report["editor"].values() for t in r["by_type"]})
    lines += ["", "SSIM / requested found, per edit type:", "",
              "| model | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for name, r in report["editor"].items():
        cells = [f"{r['by_type'][t]['ssim']:.3f} / {pct(r['by_type'][t]['requested_found'])}"
                 if t in r["by_type"] else "-" for t in types]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "### Design generators", "",
              "| model | samples | garment kind, confidence >= 0.8 | kinds | patterns | Frechet distance |",
              "|---|---|---|---|---|---|"]
    for name, r in report["designer"].items():
        lines.append(f"| {name} | {r['samples']} | {pct(r['confident_garment'])} | {len(r['kinds'])} of 6 | "
                     f"{len(r['patterns'])} of 7 | {r['frechet_distance']:.2f} |")
    return "\n".join(lines) + "\n"
