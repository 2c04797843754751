"""The shipped try-on generator really dresses people: quality on try-ons it never saw.

Unpaired pairs rendered from seeds far outside the training set, run on the cpu backend exactly as
a user would, compared with rendered ground truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from fpga_gan.data import render_tryon, tryon_input
from fpga_gan.runtime import Accelerator
from fpga_gan.train.metrics import psnr_ssim

SEED_BASE = 9_000_000  # the shipped weights trained on data set seed 0, samples 0..16k
N = 32


@pytest.fixture(scope="module")
def unseen_tryons(zoo_artifacts):
    samples = [render_tryon(SEED_BASE + i, SEED_BASE + 1000 + i) for i in range(N)]
    x = np.stack([tryon_input(s) for s in samples])
    with Accelerator.open(zoo_artifacts["tryon"], backend="cpu") as acc:
        out = acc.run(x)
    return samples, out


def test_ssim_on_unseen_pairs(unseen_tryons):
    samples, out = unseen_tryons
    target = np.stack([s.person.transpose(2, 0, 1) for s in samples])
    _, ssim = psnr_ssim(out, target)
    assert ssim >= MIN_SSIM, f"SSIM {ssim:.4f} on {N} unseen try-ons"


def test_the_chosen_garment_is_the_one_worn(unseen_tryons):
    """The torso colour of each result matches its own garment rather than the other 31.

    By chance a result would match its own ground truth best 1 time in 32 and rank it in the top
    three 3 times in 32; a generator that ignores the garment input fails this by far. (Arms in
    front of the torso and fine patterns keep the shipped model below 100 %.)
    """
    samples, out = unseen_tryons

    def torso_colour(img_chw: np.ndarray, kp: np.ndarray) -> np.ndarray:
        neck, r_hip, l_hip = kp[1, :2], kp[8, :2], kp[11, :2]
        cx, cy = (neck + (r_hip + l_hip) / 2) / 2
        y, x = int(round(cy)), int(round(cx))
        return img_chw[:, y - 1:y + 2, x - 1:x + 2].reshape(3, -1).mean(axis=1)

    results = np.stack([torso_colour(o.astype(float), s.keypoints) for o, s in zip(out, samples)])
    truths = np.stack([torso_colour(s.person.transpose(2, 0, 1).astype(float), s.keypoints) for s in samples])
    dist = np.linalg.norm(results[:, None, :] - truths[None, :, :], axis=-1)  # result i vs truth j
    own_rank = (dist < np.diag(dist)[:, None]).sum(axis=1)  # how many other garments fit better
    assert np.mean(own_rank == 0) >= 0.55, own_rank          # shipped weights: 0.59 (0.69 before SSIM fine-tuning)
    assert np.mean(own_rank <= 2) >= 0.75, own_rank          # shipped weights: 0.875


MIN_SSIM = 0.88          # shipped W4A4 weights: 0.905 on these 32 pairs
