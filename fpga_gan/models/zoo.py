"""The model zoo: generator configurations and the trained weights shipped in ``fpga_gan/zoo``.

A checkpoint file holds the constructor arguments next to the state dict, so a zoo entry (or any
checkpoint written by ``fpga-gan train``) rebuilds exactly the network that was trained.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._files import write_bytes_atomic
from ..errors import UserError

from .dcgan import DCGANGenerator
from .layers import QuantSpec
from .tryon import TryOnGenerator

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
ARCHITECTURES = {"tryon": TryOnGenerator, "dcgan": DCGANGenerator}
# name -> (architecture, file of the W4A4 weights, file of the float twin's weights)
ZOO: dict[str, tuple[str, str, str]] = {
    "tryon": ("tryon", "tryon_w4a4.pt", "tryon_float.pt"),
    "dcgan": ("dcgan", "dcgan_w4a4.pt", "dcgan_float.pt"),
    "editor": ("tryon", "editor_w4a4.pt", "editor_float.pt"),        # the try-on U-Net, on garment edits
    "designer": ("dcgan", "designer_w4a4.pt", "designer_float.pt"),  # DCGAN-64 on the design space
}


class ZooError(UserError, ValueError):
    """Unknown model name, or its weights are missing or unreadable."""


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """A ``torch.save`` file as a dict, loaded without running any code it carries.

    A ``.pt`` file is a pickle, and a pickle can name any Python callable to run while it is read.
    ``weights_only=True`` lets torch's restricted unpickler rebuild tensors, numbers, strings,
    lists, tuples and dicts only - which is all our checkpoints hold (state dicts, optimizer state,
    RNG state as byte tensors, JSON-able configs) - so no allow-list of extra globals is needed.
    """
    import pickle
    import re

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{what} not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        detail = f"it names the Python callable {found.group(1)}" if found else "it is not a plain pickle"
        raise ZooError(f"refusing to load {what} {path}: {detail}, and loading it could run code. fpga_gan "
                       "checkpoints hold only tensors, numbers, strings, lists and dicts; load files from a "
                       "source you trust, re-saved as plain state dicts") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a truncated or foreign file
        raise ZooError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict):
        raise ZooError(f"{what} {path} holds a {type(blob).__name__}, not the dict fpga_gan saves "
                       "(arch, config, state_dict)")
    return blob


def build(arch: str, config: dict[str, Any]) -> nn.Module:
    """Construct an architecture from a JSON-able config (``spec`` None means float twin)."""
    if arch not in ARCHITECTURES:
        raise ZooError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    kwargs = dict(config)
    spec = kwargs.pop("spec", None)
    kwargs["spec"] = QuantSpec(**spec) if spec else None
    for key in ("widths", "image_size"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return ARCHITECTURES[arch](**kwargs)


def model_config(model: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a generator, for checkpoints."""
    spec = asdict(model.spec) if model.spec is not None else None
    if isinstance(model, TryOnGenerator):
        config = {"widths": list(model.widths), "spec": spec, "in_channels": model.in_channels,
                  "image_size": list(model.image_size)}
        if model.straight_through_output:     # only where set: older checkpoints stay comparable
            config["straight_through_output"] = True
        return config
    if isinstance(model, DCGANGenerator):
        return {"nz": model.nz, "ngf": model.ngf, "spec": spec}
    raise TypeError(f"not a zoo architecture: {type(model).__name__}")


def arch_of(model: nn.Module) -> str:
    return "tryon" if isinstance(model, TryOnGenerator) else "dcgan"


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` into memory, so the bytes can be written atomically (``_files.write_bytes_atomic``)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_generator(model: nn.Module, path: str | Path, extra: dict | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, torch_bytes({"arch": arch_of(model), "config": model_config(model),
                                          "state_dict": model.state_dict(), **(extra or {})}))


def load_generator(path: str | Path) -> nn.Module:
    """Load a generator saved by :func:`save_generator` (or a training checkpoint), in eval mode."""
    path = Path(path)
    blob = load_checkpoint(path, "weights file")
    missing = [k for k in ("arch", "config") if k not in blob]
    if missing or not ("state_dict" in blob or "generator" in blob):
        raise ZooError(f"{path} is not a generator checkpoint: it lacks "
                       f"{', '.join(missing) or 'state_dict'} (write one with fpga-gan train)")
    try:
        model = build(blob["arch"], blob["config"])
        model.load_state_dict(blob["state_dict"] if "state_dict" in blob else blob["generator"])
    except ZooError:
        raise
    except Exception as exc:  # corrupt file, wrong format, mismatched shapes
        raise ZooError(f"cannot load generator weights from {path}: {exc}") from exc
    return model.eval()


def zoo_path(name: str, float_twin: bool = False) -> Path:
    if name not in ZOO:
        raise ZooError(f"unknown model {name!r}; the zoo has: {', '.join(ZOO)}")
    return ZOO_DIR / ZOO[name][2 if float_twin else 1]


def load_zoo_model(name: str, float_twin: bool = False) -> nn.Module:
    """A shipped generator by name ('tryon', 'dcgan'), quantized or its float twin."""
    path = zoo_path(name, float_twin)
    if not path.is_file():
        raise ZooError(f"the shipped weights for {name!r} are missing ({path}); "
                       f"retrain them with the command in {ZOO_DIR / 'README.md'}")
    return load_generator(path)
