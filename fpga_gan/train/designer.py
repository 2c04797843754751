"""Quantization-aware training of the garment design generator on the world's design space.

The generator (DCGAN-64, transposed convolutions only) maps a design code
(:mod:`fpga_gan.data.design`) to the garment the world renders for it. Every code has one right
image, so the loss is reconstruction (squared error on pixels and, heavily weighted, on chroma, plus
1 - SSIM) rather than a discriminator's opinion;
that is what makes its samples garments after minutes of CPU training. The codes come from the
world's prior and from edited garments (colours, lengths and fits outside the prior), so
``design sample --set ...`` lands on ground it was trained on.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.design import DESIGN_CODE_SIZE, design_codes
from ..models.dcgan import DCGANGenerator
from ..models.layers import QuantSpec
from ..models.zoo import model_config, save_generator
from .attributes import render_all, training_garments
from .common import (Checkpointer, TrainState, check_train_config, plot_losses, prepare_run,
                     set_cosine_learning_rate, write_json)
from .metrics import psnr_ssim, ssim_loss_term


@dataclass
class DesignerTrainConfig:
    out: str
    garments: int = 12000
    data_seed: int = 11           # garment seeds of their own (the sample grid draws seed 0)
    steps: int = 6000
    batch: int = 32
    lr: float = 3e-4
    ngf: int = 32
    ssim_weight: float = 1.0
    chroma_weight: float = 30.0    # squared error on the colour differences R - G, B - G (see chroma_error)
    quantized: bool = True
    weight_bits: int = 4
    act_bits: int = 4
    learned_act_scale: bool = False
    init_from: str | None = None  # generator .pt (the trained float twin) to start QAT from
    eval_garments: int = 256
    seed: int = 0
    checkpoint_every: int = 500
    threads: int | None = None

    def __post_init__(self) -> None:
        check_train_config(self, positive=("garments", "steps", "batch", "lr", "ngf", "eval_garments",
                                           "checkpoint_every", "threads"), non_negative=("ssim_weight", "chroma_weight"))


def chroma_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the colour differences R - G and B - G.

    Why: from a 1x1 code the generator learns the silhouette first and its three output channels
    drift together; once they are equal, the hidden features have no reason to carry hue and the
    output has no path to show it (a saddle: every garment drawn grey, whatever the loss ran for).
    The chroma signal is about a tenth of the luminance one, so it needs a weight near 30 to pull
    the generator off that saddle. An L1 chroma term does the opposite: its pull towards the
    median colour difference of a mostly white image, zero, holds the channels exactly equal.
    Measured on 2,000 garments, 1,000 float steps: chroma weight 30 (squared) reaches 0.70 of the
    renders' chroma spread by step 1,000; weight 3 (L1 or squared) or none stays below 0.04.
    """
    def chroma(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :1] - x[:, 1:2], x[:, 2:3] - x[:, 1:2]], 1)

    return F.mse_loss(chroma(pred), chroma(target))


def generate(gen: DCGANGenerator, codes: np.ndarray, batch: int = 128) -> np.ndarray:
    """uint8 NCHW images of design codes (quantized model: its output codes)."""
    gen.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(codes), batch):
            y = gen(torch.from_numpy(codes[i:i + batch]))
            outs.append(np.clip(np.round(y.numpy() * 256.0), 0, 255).astype(np.uint8))
    return np.concatenate(outs)


def train_designer(cfg: DesignerTrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) the design generator; returns held-out PSNR / SSIM against the renders."""
    out = prepare_run(cfg.out, cfg.seed, cfg.threads)
    garments = training_garments(cfg.garments, cfg.data_seed)
    codes = torch.from_numpy(design_codes(garments))
    images = torch.from_numpy(render_all(garments)).float() / 256.0
    held_out = training_garments(cfg.eval_garments, cfg.data_seed + 1000)
    eval_codes, eval_images = design_codes(held_out), render_all(held_out, desc="render held-out garments")
    spec = QuantSpec(weight_bits=cfg.weight_bits, act_bits=cfg.act_bits,
                     learned_act_scale=cfg.learned_act_scale) if cfg.quantized else None
    gen = DCGANGenerator(nz=DESIGN_CODE_SIZE, ngf=cfg.ngf, spec=spec)
    if cfg.init_from and not resume:
        from .tryon import init_from_weights

        init_from_weights(gen, cfg.init_from)
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    modules = {"generator": gen, "opt_g": opt}
    run_config = {"arch": "dcgan", "model_config": model_config(gen), "train": asdict(cfg)}
    ckpt, rng = Checkpointer(out), torch.Generator().manual_seed(cfg.seed)
    state = ckpt.load(modules, rng, run_config) if resume else TrainState()
    started = time.time()
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train designer", unit="step", dynamic_ncols=True)
    while state.step < cfg.steps:
        gen.train()
        set_cosine_learning_rate(opt, cfg.lr, state.step, cfg.steps)
        idx = torch.randint(0, len(codes), (cfg.batch,), generator=rng)
        y = images[idx]
        raw = gen.raw(codes[idx])             # unclamped: pixels past white still get a gradient
        loss_l1 = F.l1_loss(raw.detach(), y)            # reported; the loss is squared error:
        loss = F.mse_loss(raw, y) + cfg.chroma_weight * chroma_error(raw, y)
        if cfg.ssim_weight:
            loss = loss + cfg.ssim_weight * (1.0 - ssim_loss_term(raw.clamp(0, 1), y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state.step += 1
        state.history.append({"step": state.step, "l1": loss_l1.item(), "loss": float(loss.detach())})
        bar.update(1)
        bar.set_postfix(l1=f"{loss_l1.item():.4f}")
        if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
            psnr, ssim = psnr_ssim(generate(gen, eval_codes), eval_images)
            state.metrics.append({"step": state.step, "psnr": psnr, "ssim": ssim})
            bar.write(f"step {state.step}: held-out PSNR {psnr:.2f} dB, SSIM {ssim:.4f}")
            ckpt.save(modules, state, run_config, rng)
            plot_losses(state.history, out / "loss.png", f"designer ({'W4A4' if spec else 'float'})")
    bar.close()

    psnr, ssim = psnr_ssim(generate(gen, eval_codes), eval_images)
    final = {"step": state.step, "psnr": psnr, "ssim": ssim, "images": len(held_out)}
    result = {"model": "designer", "quantized": cfg.quantized, "config": run_config, "held_out": final,
              "history_metrics": state.metrics, "train_seconds_this_run": round(time.time() - started, 1)}
    save_generator(gen, out / "generator.pt", {"metrics": final})
    write_json(out / "metrics.json", result)
    plot_losses(state.history, out / "loss.png", f"designer ({'W4A4' if spec else 'float'})")
    return result
