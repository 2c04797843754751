"""Quantization-aware training of the garment design generator.

VAE-GAN: a float encoder maps real garments to latents, the quantized DCGAN generator must
reconstruct them (L1) and its samples from N(0, 1) must fool a spectrally normalised
discriminator (the standard non-saturating GAN loss). Only the generator is deployed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models.dcgan import DCGANGenerator
from ..models.discriminators import DCGANDiscriminator, GarmentEncoder
from ..models.layers import QuantSpec
from ..models.zoo import model_config, save_generator
from .common import Checkpointer, TrainState, check_train_config, plot_losses, prepare_run, write_json


@dataclass
class DCGANTrainConfig:
    out: str
    garments: int = 4000
    data_seed: int = 1
    steps: int = 6000
    batch: int = 32
    lr: float = 2e-4
    nz: int = 64
    ngf: int = 16
    ndf: int = 32
    quantized: bool = True
    weight_bits: int = 4
    act_bits: int = 4
    act_max: float = 4.0
    learned_act_scale: bool = False
    init_from: str | None = None  # generator .pt (the trained float twin) to start QAT from
    lr_d: float | None = None
    rec_weight: float = 1.0
    kl_weight: float = 0.01
    adv_weight: float = 0.02
    seed: int = 0
    checkpoint_every: int = 250
    threads: int | None = None

    def __post_init__(self) -> None:
        check_train_config(self, positive=("garments", "steps", "batch", "lr", "nz", "ngf", "ndf", "act_max",
                                           "lr_d", "checkpoint_every", "threads"),
                           non_negative=("rec_weight", "kl_weight", "adv_weight"))


def garment_images(n: int, seed: int, size: int = 64) -> np.ndarray:
    """n in-shop garments at size x size, uint8 NCHW, rendered by the synthetic world."""
    from ..data import render_garment

    seeds = np.random.SeedSequence(seed).generate_state(n)
    imgs = [render_garment(int(s), size=(size, size))[0] for s in tqdm(seeds, desc="render garments",
                                                                          unit="img", leave=False)]
    return np.stack(imgs).transpose(0, 3, 1, 2).copy()


def sample_latents(n: int, nz: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.randn(n, nz, 1, 1, generator=generator)


def train_dcgan(cfg: DCGANTrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a garment design generator; returns a summary with final losses."""
    out = prepare_run(cfg.out, cfg.seed, cfg.threads)
    real_all = torch.from_numpy(garment_images(cfg.garments, cfg.data_seed)).float() / 256.0
    spec = QuantSpec(weight_bits=cfg.weight_bits, act_bits=cfg.act_bits, act_max=cfg.act_max,
                     learned_act_scale=cfg.learned_act_scale) if cfg.quantized else None
    gen = DCGANGenerator(nz=cfg.nz, ngf=cfg.ngf, spec=spec)
    disc = DCGANDiscriminator(ndf=cfg.ndf)
    enc = GarmentEncoder(cfg.nz)
    if cfg.init_from and not resume:
        from .tryon import init_from_weights

        init_from_weights(gen, cfg.init_from)
    opt_g = torch.optim.Adam([*gen.parameters(), *enc.parameters()], lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d or cfg.lr, betas=(0.5, 0.999))
    modules = {"generator": gen, "discriminator": disc, "encoder": enc, "opt_g": opt_g, "opt_d": opt_d}
    run_config = {"arch": "dcgan", "model_config": model_config(gen), "train": asdict(cfg)}
    ckpt, rng = Checkpointer(out), torch.Generator().manual_seed(cfg.seed)
    state = ckpt.load(modules, rng, run_config) if resume else TrainState()

    started = time.time()
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train dcgan", unit="step", dynamic_ncols=True)
    while state.step < cfg.steps:
        gen.train()
        idx = torch.randint(0, len(real_all), (cfg.batch,), generator=rng)
        real01 = real_all[idx]
        real = real01 * 2 - 1  # the discriminator and encoder see [-1, 1)
        mu, logvar = enc(real)
        z_post = mu + torch.randn(mu.shape, generator=rng) * (0.5 * logvar).exp()
        recon = gen.raw(z_post[:, :, None, None])  # unclamped: pixels past white still get a gradient
        fake = gen(sample_latents(cfg.batch, cfg.nz, rng)) * 2 - 1
        d_real, d_fake = disc(real), disc(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_gen = disc(fake)
        loss_adv = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        loss_rec = F.l1_loss(recon, real01)
        loss_kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()
        loss_g = cfg.rec_weight * loss_rec + cfg.kl_weight * loss_kl + cfg.adv_weight * loss_adv
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        state.history.append({"step": state.step + 1, "rec": loss_rec.item(), "kl": loss_kl.item(),
                              "g": loss_adv.item(), "d": loss_d.item()})
        bar.update(1)
        bar.set_postfix(rec=f"{loss_rec.item():.3f}", g=f"{loss_adv.item():.2f}", d=f"{loss_d.item():.2f}")
        state.step += 1
        if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
            ckpt.save(modules, state, run_config, rng)
            plot_losses(state.history, out / "loss.png", f"DCGAN ({'W4A4' if spec else 'float'})")
    bar.close()

    tail = state.history[-200:]
    result = {"model": "dcgan", "quantized": cfg.quantized, "config": run_config,
              "final_losses": {k: float(np.mean([h[k] for h in tail])) for k in ("rec", "kl", "g", "d")},
              "train_seconds_this_run": round(time.time() - started, 1)}
    save_generator(gen, out / "generator.pt", {"metrics": result["final_losses"]})
    write_json(out / "metrics.json", result)
    plot_losses(state.history, out / "loss.png", f"DCGAN ({'W4A4' if spec else 'float'})")
    return result
