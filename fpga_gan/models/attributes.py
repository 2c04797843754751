"""The garment attribute classifier: the judge of edits and design samples (float PyTorch, not deployed).

Why a classifier of our own: the design editor is asked for "this garment with checks" and the
design generator for "a garment"; whether it delivered is a question about the garment's kind,
sleeves, neckline, pattern, colours and proportions. A net trained on the synthetic world reads
those back from pixels, and its penultimate features give a Frechet distance suited to this world
(the Inception net of the usual FID has never seen a flat-laid synthetic garment).

Besides the six garment kinds the kind head has a seventh class, "not a garment", trained on noise,
blobs, blends and shuffles of garments: without it, noise still gets a confident kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..data.edits import FIT_RANGE, LENGTH_RANGE, PERIOD_RANGE
from ..data.synth import GARMENT_KINDS, NECKLINES, PATTERNS, SLEEVES, GarmentParams

NOT_A_GARMENT = "not_a_garment"
KIND_CLASSES = (*GARMENT_KINDS, NOT_A_GARMENT)
CATEGORICAL = {"kind": KIND_CLASSES, "sleeve": SLEEVES, "neckline": NECKLINES, "pattern": PATTERNS}
#: Regression heads and their ranges (predictions are in [0, 1] of the range).
SCALARS = {"length": LENGTH_RANGE, "fit": FIT_RANGE, "period": PERIOD_RANGE}
PERIODIC_PATTERNS = ("hstripes", "vstripes", "checks", "dots")
#: Patterns whose two colours take turns, so the image does not say which is the first.
SYMMETRIC_PATTERNS = ("hstripes", "vstripes", "checks")
#: How close a reading must be to count as "the garment has this value". Colours: RGB distance
#: (two independent random colours fall within 48 of each other 2.3% of the time).
TOLERANCE = {"colour": 48.0, "colour2": 48.0, "length": 0.07, "fit": 0.05, "period": 0.04}
#: The attributes the judge compares, in report order.
JUDGED = ("kind", "sleeve", "neckline", "pattern", "colour", "colour2", "period", "length", "fit")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class GarmentAttributeNet(nn.Module):
    """64x64 RGB garment -> attribute logits and values, plus a 256-d feature for Frechet distances."""

    FEATURES = 256

    def __init__(self, width: int = 32, image_size: int = 64) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
        self.width, self.image_size = width, image_size
        w = width
        self.trunk = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w))
        cells = (image_size // 16) ** 2          # four stride-2 stages; the map keeps where things are
        self.embed = nn.Sequential(nn.Conv2d(8 * w, 64, 1), nn.ReLU(inplace=True), nn.Flatten(),
                                   nn.Linear(64 * cells, self.FEATURES), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({name: nn.Linear(self.FEATURES, len(values)) for name, values in CATEGORICAL.items()})
        self.colours = nn.Linear(self.FEATURES, 6)           # colour, colour2 as RGB / 255
        self.scalars = nn.Linear(self.FEATURES, len(SCALARS))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: float NCHW in [0, 1] (codes / 255)."""
        return self.embed(self.trunk(x * 2 - 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        out = {name: head(f) for name, head in self.heads.items()}
        out["colours"] = torch.sigmoid(self.colours(f))
        out["scalars"] = torch.sigmoid(self.scalars(f))
        out["features"] = f
        return out


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images, NHWC or NCHW with 3 channels, as the classifier's float input."""
    images = np.asarray(images)
    if images.ndim != 4 or 3 not in (images.shape[1], images.shape[-1]):
        raise ValueError(f"expected a batch of RGB images (N, H, W, 3) or (N, 3, H, W), got {images.shape}")
    if images.shape[1] != 3:
        images = images.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0


@dataclass(frozen=True)
class AttributeReading:
    """What the classifier sees in one image."""

    kind: str
    kind_confidence: float
    sleeve: str
    neckline: str
    pattern: str
    colour: tuple[int, int, int]
    colour2: tuple[int, int, int]
    length: float
    fit: float
    period: float

    @property
    def is_garment(self) -> bool:
        return self.kind != NOT_A_GARMENT


def _unrange(value: float, rng: tuple[float, float]) -> float:
    return rng[0] + float(value) * (rng[1] - rng[0])


@torch.no_grad()
def read_attributes(net: GarmentAttributeNet, images: np.ndarray, batch: int = 256
                    ) -> tuple[list[AttributeReading], np.ndarray]:
    """Readings and features (N, 256) of uint8 garment images."""
    net.eval()
    x = image_tensor(images)
    readings, features = [], []
    for i in range(0, len(x), batch):
        out = net(x[i:i + batch])
        probs = {k: torch.softmax(out[k], 1).numpy() for k in CATEGORICAL}
        colours = np.round(out["colours"].numpy() * 255).astype(int)
        scalars = out["scalars"].numpy()
        for j in range(len(colours)):
            pick = {k: CATEGORICAL[k][int(probs[k][j].argmax())] for k in CATEGORICAL}
            readings.append(AttributeReading(
                kind=pick["kind"], kind_confidence=float(probs["kind"][j].max()), sleeve=pick["sleeve"],
                neckline=pick["neckline"], pattern=pick["pattern"], colour=tuple(colours[j, :3].tolist()),
                colour2=tuple(colours[j, 3:].tolist()),
                **{name: _unrange(scalars[j, n], rng) for n, (name, rng) in enumerate(SCALARS.items())}))
        features.append(out["features"].numpy())
    return readings, np.concatenate(features) if features else np.zeros((0, net.FEATURES), np.float32)


def judged_attributes(g: GarmentParams) -> tuple[str, ...]:
    """The attributes an image of ``g`` shows (a solid garment has no second colour or period)."""
    skip = set()
    if g.pattern == "solid":
        skip.add("colour2")
    if g.pattern not in PERIODIC_PATTERNS:
        skip.add("period")
    return tuple(a for a in JUDGED if a not in skip)


def _near(a, b, attr: str) -> bool:
    return float(np.linalg.norm(np.subtract(a, b))) <= TOLERANCE[attr]


def attribute_matches(reading: AttributeReading, g: GarmentParams) -> dict[str, bool]:
    """For each attribute the image of ``g`` shows: does the reading agree with ``g``?

    Stripes and checks alternate their two colours with a phase the image cannot tell, so which of
    them is "colour" is undefined there: the two are compared as an unordered pair.
    """
    result = {}
    for attr in judged_attributes(g):
        want, got = getattr(g, attr), getattr(reading, attr)
        if attr in CATEGORICAL:
            result[attr] = got == want
        elif attr in ("colour", "colour2"):
            result[attr] = _near(got, want, attr)
        else:
            result[attr] = abs(got - want) <= TOLERANCE[attr]
    if g.pattern in SYMMETRIC_PATTERNS and not (result["colour"] and result["colour2"]):
        swapped = _near(reading.colour, g.colour2, "colour2") and _near(reading.colour2, g.colour, "colour")
        result["colour"] = result["colour2"] = swapped
    return result


def changed_attributes(source: GarmentParams, target: GarmentParams) -> set[str]:
    """Attributes whose value an edit changed (the requested ones and those coupled to them)."""
    changed = {a for a in JUDGED if getattr(source, a) != getattr(target, a)}
    if source.pattern != target.pattern:
        changed |= {"colour2", "period"}      # a new texture shows its colour and period anew
    return changed


def judge_edit(reading: AttributeReading, source: GarmentParams, target: GarmentParams,
               edit: Mapping[str, Any]) -> dict[str, Any]:
    """Did the edited image get the requested attributes, and keep the untouched ones?

    ``requested``: every attribute named in the edit that the target shows reads as the target's
    value. ``untouched``: per attribute that the edit left alone (and the target shows), whether
    it still reads as before.
    """
    matches = attribute_matches(reading, target)
    shown = set(matches)
    requested = [a for a in edit if a in shown]
    changed = changed_attributes(source, target)
    untouched = [a for a in shown if a not in changed and a not in edit]
    return {"requested_ok": all(matches[a] for a in requested), "requested": {a: matches[a] for a in requested},
            "untouched": {a: matches[a] for a in untouched}}
