"""Image quality metrics on 8-bit output codes (what the hardware produces)."""

from __future__ import annotations

import numpy as np


def psnr_ssim(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM over a batch of uint8 NCHW images, with scikit-image's definitions."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    psnrs, ssims = [], []
    for p, t in zip(pred, target):
        p_hwc, t_hwc = np.moveaxis(p, 0, -1), np.moveaxis(t, 0, -1)
        psnrs.append(peak_signal_noise_ratio(t_hwc, p_hwc, data_range=255))
        ssims.append(structural_similarity(t_hwc, p_hwc, channel_axis=-1, data_range=255))
    return float(np.mean(psnrs)), float(np.mean(ssims))
