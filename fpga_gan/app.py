"""The user-facing jobs: try a garment on, design new garments, and the demo that shows both.

Everything here runs generators through :class:`fpga_gan.runtime.Accelerator`, so the same code
path serves the cpu fallback now and the simulator or the board later (``backend=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .runtime import Accelerator


@dataclass
class TryOnResult:
    person_name: str
    cloth_name: str
    person: np.ndarray      # uint8 HxWx3
    cloth: np.ndarray
    result: np.ndarray
    target: np.ndarray | None


def _model_size(acc: Accelerator) -> tuple[int, int]:
    shape = acc.input_spec.shape
    return int(shape[2]), int(shape[3])


def run_tryon(acc: Accelerator, data_dir: str | Path, pairs: list[tuple[str, str]], split: str = "test",
              batch: int = 16) -> list[TryOnResult]:
    """Dress each (person, cloth) pair of a VITON-HD style data set with the try-on generator."""
    from .data import TryOnDataset, tryon_input

    ds = TryOnDataset(data_dir, split, size=_model_size(acc), pairs=pairs)
    items = [ds[i] for i in range(len(ds))]
    results: list[TryOnResult] = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        codes = acc.run(np.stack([tryon_input(it) for it in chunk]))
        for it, out in zip(chunk, codes):
            results.append(TryOnResult(it.person_name, it.cloth_name, it.person, it.cloth,
                                       out.transpose(1, 2, 0).astype(np.uint8), it.target))
    return results


def tryon_grid(results: list[TryOnResult], scale: int = 3) -> Image.Image:
    """Rows of person | garment | result | ground truth (grey where there is none)."""
    rows = []
    for r in results:
        target = r.target if r.target is not None else np.full_like(r.result, 200)
        gap = np.full((r.result.shape[0], 2, 3), 255, np.uint8)
        rows.append(np.concatenate([r.person, gap, r.cloth, gap, r.result, gap, target], axis=1))
    grid = np.concatenate(rows, axis=0)
    img = Image.fromarray(grid)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def design_latents(n: int, nz: int, seed: int) -> np.ndarray:
    """n latent vectors ~ N(0, 1), as real values (quantize them with the accelerator)."""
    return np.random.default_rng(seed).standard_normal((n, nz, 1, 1)).astype(np.float32)


def run_design(acc: Accelerator, n: int, seed: int = 0) -> np.ndarray:
    """n new garments from the design generator, uint8 (n, H, W, 3)."""
    nz = int(acc.input_spec.shape[1])
    codes = acc.run(acc.quantize_input(design_latents(n, nz, seed)))
    return codes.transpose(0, 2, 3, 1).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int | None = None, scale: int = 2) -> Image.Image:
    n, h, w, _ = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = img
    out = Image.fromarray(grid)
    return out.resize((out.width * scale, out.height * scale), Image.NEAREST)


def ssim_of(results: list[TryOnResult]) -> float | None:
    """Mean SSIM of results that have ground truth (None if none has)."""
    from .train.metrics import psnr_ssim

    with_gt = [r for r in results if r.target is not None]
    if not with_gt:
        return None
    pred = np.stack([r.result.transpose(2, 0, 1) for r in with_gt])
    target = np.stack([r.target.transpose(2, 0, 1) for r in with_gt])
    return psnr_ssim(pred, target)[1]
