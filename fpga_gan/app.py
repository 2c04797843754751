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


# ----------------------------------------------------------------------------------------------
# Design studio: the garment editor and the design generator

def run_designer(acc: Accelerator, garments: list, batch: int = 64) -> np.ndarray:
    """Images (n, H, W, 3) uint8 of design-space garments (:mod:`fpga_gan.data.design`) from the
    design generator."""
    from .data.design import DESIGN_CODE_SIZE, design_codes

    nz = int(acc.input_spec.shape[1])
    if nz != DESIGN_CODE_SIZE:
        raise ValueError(f"this model takes a latent of {nz} values, not a design code of {DESIGN_CODE_SIZE}: it is not the design generator "
                         "(zoo name 'designer')")
    codes = design_codes(garments)
    out = [acc.run(acc.quantize_input(codes[i:i + batch])) for i in range(0, len(codes), batch)]
    return np.concatenate(out).transpose(0, 2, 3, 1).astype(np.uint8)


def load_garment_image(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A user's in-shop garment image as uint8 (H, W, 3) at the editor's size.

    Another size is resized (area-averaged when shrinking); transparency is laid on the white the
    editor was trained on. Anything PIL cannot read is a :class:`UserError` naming the file.
    """
    from .errors import UserError

    try:
        with Image.open(path) as img:
            img.load()
            if img.width * img.height > 64_000_000:
                raise UserError(f"{path}: {img.width}x{img.height} is too large an image for a garment")
            rgba = img.convert("RGBA")
    except FileNotFoundError:
        raise UserError(f"garment image not found: {path}") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read garment image {path}: {exc}") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    H, W = size
    if rgb.size != (W, H):
        rgb = rgb.resize((W, H), Image.BOX if rgb.width > W else Image.BICUBIC)
    return np.asarray(rgb, np.uint8)


def run_edits(acc: Accelerator, garments: np.ndarray, edits: list[dict], batch: int = 64) -> np.ndarray:
    """Each garment (n, H, W, 3) uint8 after its edit, from the garment editor.

    An edit of several attributes runs as the single-attribute edits the editor was trained on, one
    accelerator pass each (:func:`fpga_gan.data.edits.edit_steps`).
    """
    from .data.edits import CONDITION_CHANNELS, condition_codes, edit_steps, editor_input

    shape = acc.input_spec.shape
    if int(shape[1]) != 3 + CONDITION_CHANNELS:
        raise ValueError(f"this model takes {shape[1]} input channels, not the editor's {3 + CONDITION_CHANNELS} "
                         "(garment + edit condition): it is not the garment editor (zoo name 'editor')")
    if garments.shape[1:3] != (shape[2], shape[3]):
        raise ValueError(f"garment images are {garments.shape[1]}x{garments.shape[2]}, the editor takes "
                         f"{shape[2]}x{shape[3]} (load_garment_image resizes)")
    current = garments.transpose(0, 3, 1, 2).astype(np.uint8)
    plans = [edit_steps(e) for e in edits]
    for step in range(max((len(p) for p in plans), default=0)):
        todo = [i for i, p in enumerate(plans) if step < len(p)]
        condition = np.stack([condition_codes(plans[i][step]) for i in todo])
        for start in range(0, len(todo), batch):
            rows = todo[start:start + batch]
            current[rows] = acc.run(editor_input(current[rows], condition[start:start + batch]))
    return current.transpose(0, 2, 3, 1).copy()


def edit_grid(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], scale: int = 2) -> Image.Image:
    """One row per edit: its label, then source | editor result | rendered ground truth."""
    from PIL import ImageDraw

    h, w = rows[0][1].shape[:2]
    label_w, gap = 84, 4
    grid = Image.new("RGB", (label_w + 3 * w + 2 * gap, len(rows) * (h + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, (label, source, result, truth) in enumerate(rows):
        y = r * (h + gap)
        draw.text((2, y + h // 2 - 6), label[:14], fill=(0, 0, 0))
        for c, img in enumerate((source, result, truth)):
            grid.paste(Image.fromarray(img), (label_w + c * (w + gap), y))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
