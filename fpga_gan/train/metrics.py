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


def ssim_loss_term(pred, target, window: int = 7, data_range: float = 1.0):
    """Mean SSIM of two float NCHW batches, differentiable, with scikit-image's definition.

    The training can then optimise the metric the model is judged by: same uniform 7x7 window,
    constants K1 = 0.01 and K2 = 0.03, sample (N - 1) covariances, mean over the valid interior
    of every channel -- so its value equals ``structural_similarity`` on the same images.
    """
    import torch.nn.functional as F

    channels = pred.shape[1]
    kernel = pred.new_full((channels, 1, window, window), 1.0 / window ** 2)

    def local_mean(x):
        return F.conv2d(x, kernel, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    correction = window ** 2 / (window ** 2 - 1)
    mu_p, mu_t = local_mean(pred), local_mean(target)
    var_p = correction * (local_mean(pred * pred) - mu_p * mu_p)
    var_t = correction * (local_mean(target * target) - mu_t * mu_t)
    cov = correction * (local_mean(pred * target) - mu_p * mu_t)
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return ssim_map.mean()
