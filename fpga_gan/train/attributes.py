"""Training of the garment attribute classifier, and the judge built on it.

The classifier learns from rendered garments: half drawn from the world's prior, half the
targets of random edits (so edited colours, lengths and fits outside the prior are known too),
plus images that are not garments (noise, colour blobs, two garments blended, a garment cut in
tiles and shuffled) for the seventh kind class.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.edits import apply_edit, random_edit, render_params
from ..data.synth import GarmentParams, sample_garment_params, sample_seed
from ..models.attributes import (CATEGORICAL, JUDGED, KIND_CLASSES, NOT_A_GARMENT, PERIODIC_PATTERNS, SCALARS,
                                 GarmentAttributeNet, attribute_matches, image_tensor, read_attributes)
from ..models.zoo import ZOO_DIR, ZooError, load_checkpoint, torch_bytes
from .._files import write_bytes_atomic
from .common import (Checkpointer, TrainState, check_train_config, plot_losses, prepare_run,
                     set_cosine_learning_rate, write_json)

CLASSIFIER_FILE = "attributes.pt"


@dataclass
class AttributeTrainConfig:
    out: str
    garments: int = 16000
    data_seed: int = 7            # garment seeds of their own: none of the edit data set's garments
    steps: int = 4000
    batch: int = 64
    lr: float = 1e-3
    width: int = 24
    negative_fraction: float = 0.15
    eval_garments: int = 1000
    seed: int = 0
    checkpoint_every: int = 500
    threads: int | None = None

    def __post_init__(self) -> None:
        check_train_config(self, positive=("garments", "steps", "batch", "lr", "width", "eval_garments",
                                           "checkpoint_every", "threads"), non_negative=("negative_fraction",))


def training_garments(n: int, seed: int) -> list[GarmentParams]:
    """``n`` garments: even indices from the prior, odd ones the targets of a random edit."""
    out = []
    for i in range(n):
        s = sample_seed(seed, i)
        g = sample_garment_params(s)
        out.append(g if i % 2 == 0 else apply_edit(g, random_edit(g, np.random.default_rng([s, 0xC1A5]))))
    return out


def _labels(garments: list[GarmentParams]) -> dict[str, torch.Tensor]:
    def index(attr: str) -> torch.Tensor:
        return torch.tensor([CATEGORICAL[attr].index(getattr(g, attr)) for g in garments])

    colours = torch.tensor([[*g.colour, *g.colour2] for g in garments], dtype=torch.float32) / 255.0
    scalars = torch.tensor([[(getattr(g, k) - lo) / (hi - lo) for k, (lo, hi) in SCALARS.items()]
                            for g in garments], dtype=torch.float32).clamp(0, 1)
    scalar_mask = torch.ones_like(scalars)
    scalar_mask[:, list(SCALARS).index("period")] = torch.tensor([float(g.pattern in PERIODIC_PATTERNS)
                                                                  for g in garments])
    colour_mask = torch.ones_like(colours)
    colour_mask[:, 3:] = torch.tensor([float(g.pattern != "solid") for g in garments])[:, None]
    return {**{k: index(k) for k in CATEGORICAL}, "colours": colours, "colour_mask": colour_mask,
            "scalars": scalars, "scalar_mask": scalar_mask}


def render_all(garments: list[GarmentParams], size: int = 64, desc: str = "render garments") -> np.ndarray:
    imgs = [render_params(g, (size, size)) for g in tqdm(garments, desc=desc, unit="img", leave=False)]
    return np.stack(imgs).transpose(0, 3, 1, 2).copy()


def not_garments(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images that are not one garment, made from a batch of garments (uint8 NCHW)."""
    n, c, h, w = real.shape
    out = np.empty_like(real)
    for i in range(n):
        kind = rng.integers(5)
        if kind == 0:                                    # noise
            out[i] = rng.integers(0, 256, (c, h, w))
        elif kind == 1:                                  # smooth colour blobs, the look of an untrained generator
            cells = int(rng.choice([2, 4, 8]))
            blob = torch.from_numpy(rng.uniform(0, 255, (1, c, cells, cells)).astype(np.float32))
            out[i] = F.interpolate(blob, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 255).byte()[0]
        elif kind == 2:                                  # two garments blended
            j = rng.integers(n)
            out[i] = ((real[i].astype(np.uint16) + real[j]) // 2).astype(np.uint8)
        elif kind == 3:                                  # a garment in shuffled tiles
            t = h // 4
            tiles = [real[i, :, y:y + t, x:x + t] for y in range(0, h, t) for x in range(0, w, t)]
            order = rng.permutation(len(tiles))
            rows = [np.concatenate([tiles[k] for k in order[r * 4:(r + 1) * 4]], axis=2) for r in range(4)]
            out[i] = np.concatenate(rows, axis=1)
        else:                                            # an empty shop background
            out[i] = rng.integers(200, 256)
    return out


def train_attributes(cfg: AttributeTrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) the classifier; returns held-out accuracies."""
    out = prepare_run(cfg.out, cfg.seed, cfg.threads)
    garments = training_garments(cfg.garments, cfg.data_seed)
    images = render_all(garments)
    labels = _labels(garments)
    net = GarmentAttributeNet(cfg.width)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    modules = {"classifier": net, "opt": opt}
    run_config = {"arch": "attributes", "model_config": {"width": cfg.width, "image_size": 64}, "train": asdict(cfg)}
    ckpt, rng = Checkpointer(out), torch.Generator().manual_seed(cfg.seed)
    state = ckpt.load(modules, rng, run_config) if resume else TrainState()
    started = time.time()
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train attributes", unit="step", dynamic_ncols=True)
    while state.step < cfg.steps:
        net.train()
        set_cosine_learning_rate(opt, cfg.lr, state.step, cfg.steps)
        idx = torch.randint(0, len(images), (cfg.batch,), generator=rng)
        batch = images[idx.numpy()]
        n_neg = int(round(cfg.batch * cfg.negative_fraction))
        if n_neg:
            batch = batch.copy()
            # drawn from the step number, so a resumed run makes the same images
            batch[:n_neg] = not_garments(batch[:n_neg], np.random.default_rng([cfg.seed, state.step]))
        x = image_tensor(batch)
        y = {k: v[idx] for k, v in labels.items()}
        y["kind"] = y["kind"].clone()
        y["kind"][:n_neg] = KIND_CLASSES.index(NOT_A_GARMENT)
        pos = torch.arange(cfg.batch) >= n_neg
        pred = net(x)
        loss_cls = F.cross_entropy(pred["kind"], y["kind"])
        for k in ("sleeve", "neckline", "pattern"):
            loss_cls = loss_cls + F.cross_entropy(pred[k][pos], y[k][pos])
        loss_reg = ((pred["colours"][pos] - y["colours"][pos]).abs() * y["colour_mask"][pos]).mean() + \
            ((pred["scalars"][pos] - y["scalars"][pos]).abs() * y["scalar_mask"][pos]).mean()
        loss = loss_cls + 10.0 * loss_reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        state.step += 1
        state.history.append({"step": state.step, "classes": loss_cls.item(), "values": loss_reg.item()})
        bar.update(1)
        bar.set_postfix(cls=f"{loss_cls.item():.3f}", reg=f"{loss_reg.item():.4f}")
        if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
            ckpt.save(modules, state, run_config, rng)
            plot_losses(state.history, out / "loss.png", "garment attribute classifier")
    bar.close()

    metrics = evaluate_classifier(net, cfg.eval_garments, seed=cfg.data_seed + 1000)
    result = {"model": "attributes", "config": run_config, "held_out": metrics,
              "train_seconds_this_run": round(time.time() - started, 1)}
    save_classifier(net, out / CLASSIFIER_FILE, {"metrics": metrics})
    write_json(out / "metrics.json", result)
    return result


def evaluate_classifier(net: GarmentAttributeNet, n: int, seed: int) -> dict[str, Any]:
    """Per-attribute agreement with the truth on ``n`` unseen rendered garments (half of them edited),
    and how many of ``n`` non-garments it rejects."""
    garments = training_garments(n, seed)
    images = render_all(garments, desc="render held-out garments")
    readings, _ = read_attributes(net, images)
    agree: dict[str, list[bool]] = {a: [] for a in JUDGED}
    for reading, g in zip(readings, garments):
        for attr, ok in attribute_matches(reading, g).items():
            agree[attr].append(ok)
    confident = [r.kind_confidence >= 0.8 and r.is_garment for r in readings]
    rejected, _ = read_attributes(net, not_garments(images, np.random.default_rng(seed)))
    return {"garments": n, "agreement": {a: float(np.mean(v)) for a, v in agree.items() if v},
            "confident_garment_kind": float(np.mean(confident)),
            "non_garments_rejected": float(np.mean([not r.is_garment for r in rejected]))}


def save_classifier(net: GarmentAttributeNet, path: str | Path, extra: dict | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, torch_bytes({"arch": "attributes", "config": {"width": net.width,
                                                                           "image_size": net.image_size},
                                          "state_dict": net.state_dict(), **(extra or {})}))


def load_classifier(path: str | Path | None = None) -> GarmentAttributeNet:
    """The shipped classifier (``path`` None) or one written by ``fpga-gan train attributes``."""
    path = Path(path) if path else ZOO_DIR / CLASSIFIER_FILE
    blob = load_checkpoint(path, "classifier weights")
    if blob.get("arch") != "attributes" or "state_dict" not in blob:
        raise ZooError(f"{path} is not an attribute classifier (write one with fpga-gan train attributes)")
    try:
        config = blob.get("config", {})
        net = GarmentAttributeNet(int(config.get("width", 32)), int(config.get("image_size", 64)))
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:  # noqa: BLE001 - mismatched shapes or a foreign state dict
        raise ZooError(f"cannot load classifier weights from {path}: {exc}") from None
    return net.eval()
