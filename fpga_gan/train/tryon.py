"""Quantization-aware training of the U-Net generators with pix2pix losses (L1 + PatchGAN).

One loop serves the try-on generator and the garment editor: they are the same U-Net, fed a
try-on data set (person + pose + garment -> person wearing it) or an edit data set (garment +
edit condition planes -> edited garment), told apart by the data set's own index file.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models.discriminators import PatchDiscriminator
from ..models.layers import QuantSpec
from ..models.tryon import TryOnGenerator
from ..models.zoo import model_config, save_generator
from .distributed import start as start_distributed
from .common import (Checkpointer, TrainConfigError, TrainState, check_train_config, plot_losses, prepare_run,
                     write_json)
from .metrics import psnr_ssim, ssim_loss_term


@dataclass
class TryOnTrainConfig:
    data: str
    out: str
    steps: int = 20000
    batch: int = 16
    lr: float = 2e-4
    l1_weight: float = 100.0
    adv_weight: float = 1.0
    ssim_weight: float = 0.0   # weight of (1 - SSIM), the metric the model is judged by
    widths: tuple[int, int, int, int] = (16, 32, 64, 64)
    size: tuple[int, int] = (64, 48)
    quantized: bool = True
    weight_bits: int = 4
    act_bits: int = 4
    learned_act_scale: bool = False
    init_from: str | None = None  # generator .pt (e.g. the trained float twin) to start QAT from
    lr_decay_from: int | None = None  # step from which both learning rates fall linearly to 0 at `steps`
    seed: int = 0
    train_limit: int | None = None
    eval_limit: int = 256
    eval_every: int = 1000
    checkpoint_every: int = 250
    threads: int | None = None

    def __post_init__(self) -> None:
        check_train_config(self, positive=("steps", "batch", "lr", "eval_limit", "eval_every", "checkpoint_every",
                                           "train_limit", "threads"),
                           non_negative=("l1_weight", "adv_weight", "ssim_weight", "lr_decay_from"))
        if len(self.widths) != 4 or not all(isinstance(w, int) and 1 <= w <= 4096 for w in self.widths):
            raise TrainConfigError(f"invalid TryOnTrainConfig: widths must be 4 channel counts from 1 to 4096, "
                                   f"got {self.widths!r}")


def learning_rate(cfg: TryOnTrainConfig, step: int) -> float:
    """Constant, then (pix2pix style) linear decay to zero from ``lr_decay_from`` to ``steps``.

    A function of the step alone, so a resumed run follows exactly the same schedule.
    """
    if cfg.lr_decay_from is None or step < cfg.lr_decay_from or cfg.steps <= cfg.lr_decay_from:
        return cfg.lr
    return cfg.lr * (cfg.steps - step) / (cfg.steps - cfg.lr_decay_from)


def _as_float(codes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(codes).float() / 256.0


def generate_codes(model: TryOnGenerator, x_codes: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 output images of a generator (quantized: its output codes; float: rounded the same way)."""
    outs = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x_codes), batch):
            device = next(model.parameters()).device
            y = model(_as_float(x_codes[i:i + batch]).to(device)).cpu()
            outs.append(np.clip(np.round(y.numpy() * 256.0), 0, 255).astype(np.uint8))
    return np.concatenate(outs)


def evaluate(model: TryOnGenerator, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = generate_codes(model, x)
    psnr, ssim = psnr_ssim(pred, y)
    return {"psnr": psnr, "ssim": ssim, "images": int(len(x))}


def init_from_weights(model: torch.nn.Module, path: str) -> None:
    """Start from another run's weights (QAT from a trained float twin converges far faster).

    Every convolution weight and bias must be present; quantizer parameters may be missing.
    """
    from ..models.zoo import load_generator

    source = load_generator(path).state_dict()
    missing, unexpected = model.load_state_dict(source, strict=False)
    lost = [k for k in missing if k.endswith((".weight", ".bias"))]
    if lost or unexpected:
        raise ValueError(f"--init-from {path}: architecture differs (missing {lost[:4]}, "
                         f"unexpected {unexpected[:4]})")


def is_edit_dataset(root: str | Path) -> bool:
    """An edit data set (``fpga-gan data make-edits``) rather than a try-on one."""
    return (Path(root) / "edits.json").is_file()


def load_pairs(root: str | Path, split: str, size: tuple[int, int], limit: int | None) -> dict[str, np.ndarray]:
    """``x`` (generator input codes) and ``y`` (target codes) of a try-on or an edit data set."""
    from ..data import load_arrays
    from ..data.edits import editor_input, load_edit_arrays

    if not is_edit_dataset(root):
        arrays = load_arrays(root, split, size=size, limit=limit)
        if arrays["y"] is None:
            raise ValueError(f"{root}: every {split} pair needs a target image")
        return {"x": arrays["x"], "y": arrays["y"]}
    arrays = load_edit_arrays(root, split, limit=limit)
    if tuple(arrays["source"].shape[2:]) != tuple(size):
        raise ValueError(f"{root} holds {arrays['source'].shape[2]}x{arrays['source'].shape[3]} garments, "
                         f"but --size is {size[0]}x{size[1]}: pass --size to match, or remake the data set")
    return {"x": editor_input(arrays["source"], arrays["condition"]), "y": arrays["target"]}


def train_tryon(cfg: TryOnTrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a try-on generator or garment editor; returns the final held-out metrics.

    Under ``torchrun --nproc-per-node N`` the N processes train one model data-parallel (see
    :mod:`fpga_gan.train.distributed`); ``cfg.batch`` is then each process's batch.
    """
    dist = start_distributed()
    out = prepare_run(cfg.out, cfg.seed, cfg.threads)
    size = tuple(cfg.size)
    name = "editor" if is_edit_dataset(cfg.data) else "tryon"
    train = load_pairs(cfg.data, "train", size, cfg.train_limit)
    test = load_pairs(cfg.data, "test", size, cfg.eval_limit)
    spec = QuantSpec(weight_bits=cfg.weight_bits, act_bits=cfg.act_bits,
                     learned_act_scale=cfg.learned_act_scale) if cfg.quantized else None
    gen = TryOnGenerator(widths=tuple(cfg.widths), spec=spec, in_channels=train["x"].shape[1],
                         image_size=size, straight_through_output=name == "editor")
    if cfg.init_from and not resume:
        init_from_weights(gen, cfg.init_from)
    gen = gen.to(dist.device)
    disc = PatchDiscriminator(train["x"].shape[1] + 3).to(dist.device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    modules = {"generator": gen, "discriminator": disc, "opt_g": opt_g, "opt_d": opt_d}
    run_config = {"arch": "tryon", "model_config": model_config(gen),
                  "train": {**asdict(cfg), "widths": list(cfg.widths), "size": list(size)}, "size": list(size)}
    ckpt, rng = Checkpointer(out), torch.Generator().manual_seed(cfg.seed)
    state = ckpt.load(modules, rng, run_config) if resume else TrainState()
    gen_step, disc_step = dist.wrap(gen), dist.wrap(disc)     # wrapped after the load (Brevitas swaps scales)

    shard = dist.shard(len(train["x"]))
    started = time.time()
    bar = tqdm(total=cfg.steps, initial=state.step, desc=f"train {name}", unit="step", dynamic_ncols=True,
               disable=not dist.main)
    while state.step < cfg.steps:
        gen.train()
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, state.step)
        idx = shard[torch.randint(0, len(shard), (cfg.batch,), generator=rng).numpy()]
        x, y = _as_float(train["x"][idx]).to(dist.device), _as_float(train["y"][idx]).to(dist.device)
        fake = gen_step(x)
        # Discriminator: real pairs vs generated pairs (least-squares GAN loss, stable on small data),
        # in one forward pass: DistributedDataParallel takes one forward per backward.
        d_real, d_fake = disc_step(torch.cat([torch.cat([x, y], 1), torch.cat([x, fake.detach()], 1)])).chunk(2)
        loss_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_gen = disc_step(torch.cat([x, fake], 1))
        loss_l1 = F.l1_loss(fake, y)
        loss_adv = F.mse_loss(d_gen, torch.ones_like(d_gen))
        loss_g = cfg.l1_weight * loss_l1 + cfg.adv_weight * loss_adv
        if cfg.ssim_weight:
            loss_g = loss_g + cfg.ssim_weight * (1.0 - ssim_loss_term(fake, y))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        state.step += 1
        state.history.append({"step": state.step, "l1": loss_l1.item(), "g_adv": loss_adv.item(),
                              "d": loss_d.item()})
        bar.update(1)
        bar.set_postfix(l1=f"{loss_l1.item():.4f}")
        if dist.main and (state.step % cfg.eval_every == 0 or state.step == cfg.steps):
            metrics = {"step": state.step, **evaluate(gen, test["x"], test["y"])}
            state.metrics.append(metrics)       # (rank 0's history is the one its checkpoints keep)
            bar.write(f"step {state.step}: held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
        if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
            if dist.main:
                ckpt.save(modules, state, run_config, rng)
                plot_losses(state.history, out / "loss.png", f"{name} ({'W4A4' if spec else 'float'})")
            dist.barrier()
    bar.close()

    digests = dist.check_identical(gen)
    result = {"model": name, "quantized": cfg.quantized, "config": run_config,
              "processes": {"world": dist.world, "backend": dist.backend, "weight_sha256": digests},
              "train_seconds_this_run": round(time.time() - started, 1)}
    if dist.main:
        final = {"step": state.step, **evaluate(gen, test["x"], test["y"])}
        result.update(held_out=final, history_metrics=state.metrics)
        save_generator(gen, out / "generator.pt", {"metrics": final})
        write_json(out / "metrics.json", result)
        plot_losses(state.history, out / "loss.png", f"{name} ({'W4A4' if spec else 'float'})")
    dist.barrier()
    dist.stop()
    return result
