"""The design space of the garment design generator: garment parameters as a latent code.

Why a structured latent: the first design generator drew its latent from N(0, 1) and learned,
in the time this project can train, to make smears. The world's own design space - kind, sleeve,
neckline, pattern, colours, proportions - is a latent whose every point is a garment, whose prior
is the world's garment distribution, and whose axes a designer can set by name. The generator
(the same DCGAN-64 streaming architecture) learns to draw any point of it; a sample is a draw
from the prior, optionally with some attributes fixed (``--set kind=dress``).

Numpy only, like the runtime: a board can make design codes without torch.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .edits import FIT_RANGE, LENGTH_RANGE, PERIOD_RANGE, EditError, apply_edit
from .synth import (GARMENT_KINDS, LOGO_SHAPES, NECKLINES, PATTERNS, SLEEVES, GarmentParams, sample_garment_params,
                    sample_seed)

__all__ = ["DESIGN_CODE_LAYOUT", "DESIGN_CODE_SIZE", "design_code", "design_codes", "sample_designs"]

_CATEGORIES = {"kind": GARMENT_KINDS, "sleeve": SLEEVES, "neckline": NECKLINES, "pattern": PATTERNS,
               "logo_shape": LOGO_SHAPES}
# scalar attribute -> the range mapped onto [-1, 1]
_SCALARS = {"length": LENGTH_RANGE, "fit": FIT_RANGE, "hem": (0.96, 1.42), "period": PERIOD_RANGE,
            "duty": (0.35, 0.55), "logo_size": (0.14, 0.2), "shop_bg": (240.0, 253.0)}
#: (name, number of latent entries), in order.
DESIGN_CODE_LAYOUT = (*((k, len(v)) for k, v in _CATEGORIES.items()), ("colour", 3), ("colour2", 3),
                      *((k, 1) for k in _SCALARS), ("phase", 2))
DESIGN_CODE_SIZE = sum(n for _, n in DESIGN_CODE_LAYOUT)


def design_code(g: GarmentParams) -> np.ndarray:
    """One garment as its latent code: float32 values in [-1, 1] (one-hot as -1/+1, colours and
    scalars mapped linearly, the pattern phase as a point on the circle)."""
    code: list[float] = []
    for key, choices in _CATEGORIES.items():
        code += [1.0 if getattr(g, key) == c else -1.0 for c in choices]
    for key in ("colour", "colour2"):
        code += [v / 127.5 - 1.0 for v in getattr(g, key)]
    for key, (lo, hi) in _SCALARS.items():
        code.append(float(np.clip(2.0 * (getattr(g, key) - lo) / (hi - lo) - 1.0, -1.0, 1.0)))
    code += [math.cos(2 * math.pi * g.phase), math.sin(2 * math.pi * g.phase)]
    return np.asarray(code, np.float32)


def design_codes(garments: list[GarmentParams]) -> np.ndarray:
    """Latent codes of garments as the generator's input, float32 (N, DESIGN_CODE_SIZE, 1, 1)."""
    return np.stack([design_code(g) for g in garments])[:, :, None, None]


def sample_designs(n: int, seed: int = 0, fixed: Mapping[str, Any] | None = None) -> list[GarmentParams]:
    """``n`` garments drawn from the world's prior, each with ``fixed`` (an edit, e.g.
    ``{"kind": "dress"}``) applied. The same seed draws the same garments.

    A draw that cannot take ``fixed`` (``sleeve=long`` on a dress) is drawn again, so every
    design honours it; a ``fixed`` no garment can take is an :class:`EditError`.
    """
    if n < 1:
        raise ValueError(f"the number of designs must be at least 1, got {n}")
    designs = []
    for i in range(n):
        for attempt in range(_MAX_DRAWS):
            g = sample_garment_params(sample_seed(seed, i) if attempt == 0 else
                                      sample_seed(seed, (attempt << 32) | i))
            if not fixed:
                break
            try:
                g = apply_edit(g, fixed)
                break
            except EditError:
                if attempt == _MAX_DRAWS - 1:
                    raise
        designs.append(g)
    return designs


_MAX_DRAWS = 200
