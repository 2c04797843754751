"""``fpga-gan demo``: the whole software path in one command, on a fresh synthetic test set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

DEMO_SEED = 2026  # a data set seed the shipped weights never trained on


def run_demo(out_dir: Path, n_pairs: int = 6, backend: str = "cpu",
             echo: Callable[[str], None] = print) -> dict:
    from .app import edit_grid, image_grid, run_designer, run_edits, run_tryon, ssim_of, tryon_grid
    from .data.design import sample_designs
    from .data.edits import edit_examples, render_params
    from .artifacts import zoo_artifact
    from .data import TryOnDataset, make_dataset
    from .runtime import Accelerator

    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / "data"      # replaced only if it is a data set we made (its marker says so)
    make_dataset(data_dir, n=max(4 * n_pairs, 24), seed=DEMO_SEED, test_fraction=0.5, progress=False,
                 overwrite=True)
    pairs = TryOnDataset(data_dir, "test").pairs[:n_pairs]

    with Accelerator.open(zoo_artifact("tryon"), backend=backend) as acc:
        results = run_tryon(acc, data_dir, pairs)
    tryon_png = out_dir / "tryon.png"
    tryon_grid(results).save(tryon_png)
    ssim = ssim_of(results)

    examples = edit_examples(DEMO_SEED, per_type=1)
    with Accelerator.open(zoo_artifact("editor"), backend=backend) as acc:
        size = (int(acc.input_spec.shape[2]), int(acc.input_spec.shape[3]))
        sources = np.stack([render_params(src, size) for _, src, _, _ in examples])
        edited = run_edits(acc, sources, [edit for _, _, edit, _ in examples])
    edits_png = out_dir / "edits.png"
    edit_grid([(kind, source, result, render_params(target, size))
               for (kind, _, _, target), source, result in zip(examples, sources, edited)]).save(edits_png)

    with Accelerator.open(zoo_artifact("designer"), backend=backend) as acc:
        designs = run_designer(acc, sample_designs(16, seed=0))
    designs_png = out_dir / "designs.png"
    image_grid(designs, columns=8).save(designs_png)

    echo(f"try-on ({backend} backend): {tryon_png}  (rows: person | garment | result | ground truth)")
    if ssim is not None:
        echo(f"  SSIM of the {len(results)} try-ons shown: {ssim:.4f}")
    echo(f"garment edits ({backend} backend): {edits_png}  (rows: edit type; source | editor | ground truth)")
    echo(f"designs ({backend} backend): {designs_png}")
    echo(f"demo finished in {time.time() - t0:.1f} s")
    return {"tryon_png": tryon_png, "edits_png": edits_png, "designs_png": designs_png, "ssim": ssim}
