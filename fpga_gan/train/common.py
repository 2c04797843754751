"""What both training loops share: seeding, checkpoints with resume, and the loss-curve plot."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import write_bytes_atomic
from .._files import write_json_atomic as write_json  # noqa: F401 - the loops write metrics with it
from ..errors import InternalError, UserError


class TrainConfigError(UserError, ValueError):
    """A training config value that would train nothing or train garbage (batch 0, a NaN rate)."""


def check_train_config(cfg: Any, positive: tuple[str, ...], non_negative: tuple[str, ...] = ()) -> None:
    """Refuse a config before any work: ``positive`` fields must be finite and > 0 (None allowed,
    meaning "not set"), ``non_negative`` ones finite and >= 0, and bit widths between 1 and 16.

    Why here and not only in the CLI: the Python API is used directly (notebooks, sweeps), and
    ``batch=0`` there once saved a NaN generator with no error at all.
    """
    names = {f.name for f in fields(cfg)}
    problems = []
    for name in positive + non_negative:
        if name not in names:
            raise InternalError(f"{type(cfg).__name__} has no field {name} to check")
        value = getattr(cfg, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name} must be a finite number, got {value!r}")
        elif name in positive and value <= 0:
            problems.append(f"{name} must be positive, got {value!r}")
        elif value < 0:
            problems.append(f"{name} must not be negative, got {value!r}")
    for name in ("weight_bits", "act_bits"):
        value = getattr(cfg, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16):
            problems.append(f"{name} must be an integer from 1 to 16, got {value!r}")
    if problems:
        raise TrainConfigError(f"invalid {type(cfg).__name__}: " + "; ".join(problems))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_run(out: str | Path, seed: int, threads: int | None) -> Path:
    """Create the run directory, pin CPU threads and seed every generator before building models."""
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    return out


def set_cosine_learning_rate(optimizer: torch.optim.Optimizer, base: float, step: int, steps: int) -> None:
    """Cosine decay from ``base`` to 0 over ``steps``: a function of the step alone, so a resumed
    run follows exactly the schedule of an uninterrupted one."""
    for group in optimizer.param_groups:
        group["lr"] = base * 0.5 * (1 + math.cos(math.pi * step / steps))


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


class Checkpointer:
    """Atomic checkpoints in ``out_dir/checkpoint.pt``; an interrupted run resumes from the last one."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / "checkpoint.pt"

    def save(self, modules: dict[str, torch.nn.Module | torch.optim.Optimizer], state: TrainState,
             config: dict[str, Any], rng: torch.Generator) -> None:
        blob = {name: m.state_dict() for name, m in modules.items()}
        blob.update(step=state.step, history=state.history, metrics=state.metrics, config=config,
                    rng=rng.get_state(), torch_rng=torch.get_rng_state())
        # Plain containers only (tensors, numbers, strings, lists, dicts): load() reads it with
        # weights_only=True, which refuses anything else.
        from ..models.zoo import torch_bytes

        write_bytes_atomic(self.path, torch_bytes(blob))

    def load(self, modules: dict[str, torch.nn.Module | torch.optim.Optimizer], rng: torch.Generator,
             config: dict[str, Any]) -> TrainState:
        from ..models.zoo import load_checkpoint

        if not self.path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {self.path}")
        blob = load_checkpoint(self.path, "--resume checkpoint")
        needed = [*modules, "step", "history", "metrics", "config", "rng", "torch_rng"]
        missing = [k for k in needed if k not in blob]
        if missing or not isinstance(blob["config"], dict):
            raise ValueError(f"--resume: {self.path} is not a checkpoint of this training loop: it lacks "
                             f"{', '.join(missing) or 'a config dict'}")
        mismatched = {k for k in ("arch", "model_config") if blob["config"].get(k) != config.get(k)}
        if mismatched:
            raise ValueError(f"--resume: checkpoint {self.path} was trained with a different "
                             f"{', '.join(sorted(mismatched))}: {blob['config']}")
        try:
            networks = {k: m for k, m in modules.items() if isinstance(m, torch.nn.Module)}
            owner = {id(p): (k, n) for k, m in networks.items() for n, p in m.named_parameters()}
            for name, m in networks.items():
                m.load_state_dict(blob[name])
            # Brevitas swaps a learned activation scale's Parameter object on load_state_dict, so
            # an optimizer built before the load would silently stop training those scales: point
            # every optimizer at the loaded parameters before its own state goes in.
            loaded = {(k, n): p for k, m in networks.items() for n, p in m.named_parameters()}
            for name, m in modules.items():
                if name in networks:
                    continue
                for group in m.param_groups:
                    group["params"] = [loaded.get(owner.get(id(p)), p) for p in group["params"]]
                m.load_state_dict(blob[name])
            rng.set_state(blob["rng"])
            torch.set_rng_state(blob["torch_rng"])
            return TrainState(int(blob["step"]), list(blob["history"]), list(blob["metrics"]))
        except (RuntimeError, TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"--resume: {self.path} does not fit this run ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def plot_losses(history: list[dict[str, float]], path: Path, title: str) -> None:
    """Loss curves (smoothed) to a PNG, so a run can be judged at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = np.array([h["step"] for h in history])
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in [k for k in history[0] if k != "step"]:
        values = np.array([h[key] for h in history], dtype=float)
        k = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
