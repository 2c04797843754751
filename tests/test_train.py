"""Training: a short run learns, writes its outputs, and an interrupted run resumes exactly."""

from __future__ import annotations

import json

import torch

from fpga_gan.models.zoo import load_generator
from fpga_gan.train import DCGANTrainConfig, TryOnTrainConfig, train_dcgan, train_tryon


def _tryon_cfg(data, out, steps):
    # LR decay from step 1: steps 0-1 run at the full rate in both the straight and the
    # "interrupted" run, so the resumed run must match the straight one exactly, decay included.
    return TryOnTrainConfig(data=str(data), out=str(out), steps=steps, batch=4, widths=(8, 8, 16, 16),
                            eval_limit=8, eval_every=1000, checkpoint_every=2, seed=3, lr_decay_from=1)


def test_learning_rate_decays_linearly_to_zero():
    from fpga_gan.train.tryon import learning_rate

    cfg = TryOnTrainConfig(data="", out="", steps=100, lr=1e-3, lr_decay_from=60)
    assert [learning_rate(cfg, s) for s in (0, 59, 60)] == [1e-3, 1e-3, 1e-3]
    assert learning_rate(cfg, 80) == 1e-3 * 20 / 40 and learning_rate(cfg, 100) == 0
    assert learning_rate(TryOnTrainConfig(data="", out="", steps=100, lr=1e-3), 99) == 1e-3


def test_tryon_training_writes_outputs_and_resumes_exactly(small_dataset, tmp_path):
    straight = train_tryon(_tryon_cfg(small_dataset, tmp_path / "a", 4))
    for f in ("generator.pt", "metrics.json", "loss.png", "checkpoint.pt"):
        assert (tmp_path / "a" / f).is_file()
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert 0 < metrics["held_out"]["ssim"] <= 1 and metrics["held_out"]["psnr"] > 0

    train_tryon(_tryon_cfg(small_dataset, tmp_path / "b", 2))          # "interrupted" after 2 steps
    resumed = train_tryon(_tryon_cfg(small_dataset, tmp_path / "b", 4), resume=True)
    assert resumed["held_out"] == straight["held_out"]
    a, b = load_generator(tmp_path / "a" / "generator.pt"), load_generator(tmp_path / "b" / "generator.pt")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_dcgan_training_runs(tmp_path):
    cfg = DCGANTrainConfig(out=str(tmp_path), garments=16, steps=2, batch=4, ngf=4, ndf=8,
                           checkpoint_every=1)
    result = train_dcgan(cfg)
    assert set(result["final_losses"]) == {"rec", "kl", "g", "d"}
    assert load_generator(tmp_path / "generator.pt").ngf == 4


def test_resume_without_checkpoint_is_a_clear_error(small_dataset, tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_tryon(_tryon_cfg(small_dataset, tmp_path, 2), resume=True)


def test_ssim_loss_term_equals_scikit_image_ssim_and_has_gradients():
    """The training's SSIM term is the metric the model is judged by, not an approximation."""
    import numpy as np

    from fpga_gan.train.metrics import psnr_ssim, ssim_loss_term

    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (3, 3, 32, 24)).astype(np.uint8)
    pred = np.clip(target.astype(int) + rng.integers(-50, 50, target.shape), 0, 255).astype(np.uint8)
    _, expected = psnr_ssim(pred, target)
    p = (torch.from_numpy(pred).double() / 255).requires_grad_()
    value = ssim_loss_term(p, torch.from_numpy(target).double() / 255)
    assert abs(float(value) - expected) < 1e-9
    value.backward()
    assert p.grad is not None and float(p.grad.abs().sum()) > 0


def _torchrun(data, out, steps: int, *extra: str) -> dict:
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "fpga_gan.cli", "train", "tryon", "--data", str(data), "--out", str(out), "--steps", str(steps),
               "--batch", "2", "--widths", "8,8,16,16", "--seed", "3", "--threads", "1", *extra]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_two_processes_train_one_model_data_parallel_and_resume_exactly(small_dataset, tmp_path):
    straight = _torchrun(small_dataset, tmp_path / "a", 4)
    processes = straight["processes"]
    assert processes["world"] == 2 and processes["backend"] == "gloo"
    assert len(set(processes["weight_sha256"])) == 1          # both ranks hold the same weights

    _torchrun(small_dataset, tmp_path / "b", 2)                # "interrupted" after 2 steps
    resumed = _torchrun(small_dataset, tmp_path / "b", 4, "--resume")
    assert resumed["processes"]["weight_sha256"] == processes["weight_sha256"]
    assert resumed["held_out"] == straight["held_out"]
    # a different shard per rank: the run differs from a single process on the same seed and batch
    single = train_tryon(TryOnTrainConfig(data=str(small_dataset), out=str(tmp_path / "c"), steps=4, batch=2,
                                          widths=(8, 8, 16, 16), seed=3, threads=1))
    assert single["processes"]["weight_sha256"] != processes["weight_sha256"]
