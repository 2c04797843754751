"""Synthetic virtual try-on world: 2D mannequins wearing parametric garments.

Why this exists: real try-on data (VITON-HD) is large, licensed and cannot be downloaded at run time,
yet the quantised try-on generator and its FPGA pipeline need paired data to train and to be checked
on. This module draws a small, fully controllable world instead. Every sample is a function of an
integer seed only, so data sets can be regenerated bit for bit on any machine and with any number of
worker processes.

One sample holds, like VITON-HD:

* ``person``: a mannequin wearing a garment (the training target);
* ``cloth`` / ``cloth_mask``: the same garment laid flat on a near-white background ("in-shop");
* ``agnostic``: the person with a garment-INDEPENDENT region (torso, arms, hip-to-knee) painted grey,
  so the generator has to take the garment from ``cloth`` and cannot copy it from its input;
* ``keypoints``: 18 OpenPose COCO-18 keypoints in output-pixel coordinates.

The garment texture is a function of "garment coordinates" (units of the garment's shoulder width,
origin at the top of the neckline). The in-shop image and the worn body panel are both affine images
of that one coordinate frame, and sleeves use coordinates along the sleeve axis, so stripes, checks,
dots and logos are consistent between the flat and the worn garment: the mapping a network must learn
exists and is simple.

Drawing happens at 4x supersampling on a float canvas (masks drawn with Pillow, colours with NumPy)
and is box-filtered down, which gives smooth edges at 64x48.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .._files import publish_dir, refuse_unless_ours

__all__ = [
    "GENERATOR_VERSION",
    "KEYPOINT_NAMES",
    "GARMENT_KINDS",
    "PATTERNS",
    "AGNOSTIC_GREY",
    "PersonParams",
    "GarmentParams",
    "TryOnSample",
    "sample_person_params",
    "sample_garment_params",
    "render_sample",
    "render_tryon",
    "render_garment",
    "sample_seed",
    "make_dataset",
    "params_dict",
]

#: Bumped whenever the pictures a seed produces change; recorded in dataset.json.
GENERATOR_VERSION = "1.1.0"

#: OpenPose COCO-18 order. "r" is the PERSON's right, i.e. the image's left for a front view.
KEYPOINT_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)

GARMENT_KINDS = ("tee", "longsleeve", "tank", "shirt", "dress", "coat")
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots", "gradient", "logo")
SLEEVES = ("none", "short", "three_quarter", "long")
NECKLINES = ("round", "v", "collar")
HAIR_STYLES = ("short", "long", "bun")
ARM_POSES = ("down", "out", "hip")
BACKGROUNDS = ("plain", "gradient", "wall")
LOGO_SHAPES = ("circle", "square", "triangle", "diamond", "ring")

#: The grey VITON-HD uses for the cloth-agnostic region.
AGNOSTIC_GREY = 128

SUPERSAMPLE = 4

# A palette of realistic skin tones (light to deep); each sample jitters its pick slightly.
SKIN_TONES = (
    (255, 224, 196), (246, 208, 178), (241, 194, 167), (234, 192, 134), (224, 172, 128),
    (210, 160, 110), (198, 134, 66), (176, 120, 83), (141, 85, 36), (120, 72, 45), (92, 56, 32),
)
HAIR_COLOURS = (
    (28, 24, 22), (55, 38, 28), (90, 60, 38), (130, 90, 55), (196, 160, 98), (150, 62, 30),
    (168, 166, 160),
)
LEGWEAR_COLOURS = (
    (25, 25, 30), (35, 45, 80), (60, 85, 130), (90, 90, 95), (150, 135, 100), (85, 60, 45),
    (40, 70, 50), (120, 40, 45),
)
SHOE_COLOURS = ((20, 20, 20), (240, 240, 238), (110, 70, 40), (60, 60, 70), (150, 30, 30))

# Garment geometry is in garment units: 1 unit = the garment's shoulder width.
_REF_TORSO = 1.2          # torso length / shoulder width of the reference mannequin
_REF_UPPER_ARM = 0.67     # upper arm / shoulder width of the reference mannequin
_REF_FOREARM = 0.59
_SLEEVE_WIDTH = 0.32      # sleeve width (units)
_SHOP_SLEEVE_DEG = 50.0   # in-shop sleeves point outwards-down at this angle from vertical
_SHOULDER_Y = 0.08        # garment shoulder point height below the neckline top (units)
_GARMENT_TOP = 0.035      # garment top edge above the shoulder joint (fraction of figure height)

_SHOP_SLEEVE_UNITS = {
    "none": 0.0, "short": 0.32, "three_quarter": _REF_UPPER_ARM + 0.3,
    "long": _REF_UPPER_ARM + _REF_FOREARM + 0.05,
}


# ----------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class PersonParams:
    """Everything that defines a mannequin and its scene (fractions refer to the figure height u).

    Kept separate from the garment so a person seed and a garment seed can be combined freely,
    which is how unpaired ground truth is produced.
    """

    height: float            # figure height as a fraction of the canvas height
    cx: float                # horizontal centre as a fraction of the canvas width
    dy: float                # vertical jitter as a fraction of the canvas height
    shoulder: float          # shoulder width / u
    hip: float               # hip width / u
    head: float              # head radius / u
    neck: float              # neck length / u
    torso: float             # shoulder joint to hip line / u
    upper_arm: float         # / u
    forearm: float           # / u
    leg_spread: float        # extra ankle distance from the hip joint / u
    skin: tuple[int, int, int]
    hair_colour: tuple[int, int, int]
    hair_style: str
    hair_length: float       # long hair: how far below the shoulder line it falls / u
    r_upper: float           # arm angles in degrees from straight down, positive = outwards
    r_lower: float
    l_upper: float
    l_lower: float
    front_arm: str           # "none", "right" or "left": that arm is bent in front of the torso
    legwear: tuple[int, int, int]
    shoes: tuple[int, int, int]
    background: str
    bg_colour: tuple[int, int, int]
    bg_colour2: tuple[int, int, int]
    horizon: float           # wall/floor boundary as a fraction of the canvas height


@dataclass(frozen=True)
class GarmentParams:
    """A parametric top or dress; lengths in torso lengths, widths in garment units."""

    kind: str
    sleeve: str
    neckline: str
    length: float            # body length in torso lengths (shoulder line to hem)
    fit: float               # width factor of the body below the shoulders
    hem: float               # hem width relative to the chest (flare for dresses)
    colour: tuple[int, int, int]
    colour2: tuple[int, int, int]
    pattern: str
    period: float            # pattern period (units); >= 0.34 so it survives 64x48
    phase: float
    duty: float              # stripe fraction / dot radius fraction
    logo_shape: str
    logo_size: float
    shop_bg: int             # grey level of the in-shop background (near white)


@dataclass
class TryOnSample:
    """One rendered sample; all images uint8 in (H, W, 3) or (H, W)."""

    person: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray
    agnostic: np.ndarray
    keypoints: np.ndarray    # float32 (18, 3): x, y in output pixels, confidence
    person_params: PersonParams
    garment_params: GarmentParams
    person_seed: int
    garment_seed: int


def _jitter(rng: np.random.Generator, colour: Sequence[int], amount: int) -> tuple[int, int, int]:
    c = np.asarray(colour) + rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _far_from_grey(make: Callable[[], tuple[int, int, int]]) -> tuple[int, int, int]:
    """Backgrounds must not look like the agnostic grey, or the grey region would be ambiguous."""
    while True:
        c = make()
        if max(abs(v - AGNOSTIC_GREY) for v in c) > 40:
            return c


def _person_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0])


def _garment_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 1])


def _arm_angles(rng: np.random.Generator, pose: str) -> tuple[float, float]:
    if pose == "down":
        upper = rng.uniform(4, 18)
        return upper, upper + rng.uniform(-4, 14)
    if pose == "out":
        upper = rng.uniform(22, 40)
        return upper, upper + rng.uniform(-15, 20)
    upper = rng.uniform(28, 42)               # hand on hip: elbow out, forearm back inwards
    return upper, rng.uniform(-55, -30)


def sample_person_params(seed: int) -> PersonParams:
    """Draw a mannequin and its scene from the person stream of ``seed``."""
    rng = _person_rng(seed)
    shoulder = rng.uniform(0.22, 0.29)
    pose_r, pose_l = rng.choice(ARM_POSES), rng.choice(ARM_POSES)
    r_upper, r_lower = _arm_angles(rng, pose_r)
    l_upper, l_lower = _arm_angles(rng, pose_l)
    front = "none"
    if rng.random() < 0.35:                   # one arm bent across the torso, occluding the garment
        front = "right" if rng.random() < 0.5 else "left"
        upper, lower = rng.uniform(0, 14), -rng.uniform(72, 105)
        if front == "right":
            r_upper, r_lower = upper, lower
        else:
            l_upper, l_lower = upper, lower
    background = str(rng.choice(BACKGROUNDS))

    def bg() -> tuple[int, int, int]:
        return _hsv(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.55, 0.97))

    return PersonParams(
        height=float(rng.uniform(0.8, 0.93)),
        cx=float(rng.uniform(0.42, 0.58)),
        dy=float(rng.uniform(-0.02, 0.02)),
        shoulder=float(shoulder),
        hip=float(rng.uniform(0.72, 0.86) * shoulder),
        head=float(rng.uniform(0.058, 0.07)),
        neck=float(rng.uniform(0.022, 0.035)),
        torso=float(rng.uniform(0.29, 0.33)),
        upper_arm=float(rng.uniform(0.16, 0.18)),
        forearm=float(rng.uniform(0.14, 0.155)),
        leg_spread=float(rng.uniform(0.0, 0.06)),
        skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 6),
        hair_colour=_jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 8),
        hair_style=str(rng.choice(HAIR_STYLES)),
        hair_length=float(rng.uniform(0.0, 0.1)),
        r_upper=float(r_upper), r_lower=float(r_lower),
        l_upper=float(l_upper), l_lower=float(l_lower),
        front_arm=front,
        legwear=_jitter(rng, LEGWEAR_COLOURS[rng.integers(len(LEGWEAR_COLOURS))], 10),
        shoes=_jitter(rng, SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))], 8),
        background=background,
        bg_colour=_far_from_grey(bg),
        bg_colour2=_far_from_grey(bg),
        horizon=float(rng.uniform(0.74, 0.88)),
    )


_KIND_SHAPE = {
    # kind: (sleeve choices, neckline choices, length range, hem range)
    "tee": (("short",), ("round", "v"), (1.0, 1.15), (0.96, 1.06)),
    "longsleeve": (("long",), ("round", "v"), (1.0, 1.15), (0.96, 1.06)),
    "tank": (("none",), ("round", "v"), (0.95, 1.1), (0.96, 1.06)),
    "shirt": (("short", "long"), ("collar",), (1.05, 1.2), (0.98, 1.06)),
    "dress": (("none", "short", "three_quarter"), ("round", "v"), (1.45, 1.6), (1.2, 1.42)),
    "coat": (("long",), ("collar",), (1.35, 1.55), (1.04, 1.14)),
}


def _garment_colours(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    h = rng.random()
    c1 = _hsv(h, rng.uniform(0.15, 0.95), rng.uniform(0.25, 0.95))
    r = rng.random()
    if r < 0.35:
        c2 = _hsv(rng.random(), rng.uniform(0.0, 0.08), rng.uniform(0.9, 0.98))   # near white
    elif r < 0.55:
        c2 = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.08, 0.2))    # near black
    else:
        c2 = _hsv(h + rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.95), rng.uniform(0.3, 0.95))
    if np.linalg.norm(np.subtract(c1, c2)) < 90:   # keep the pattern visible
        lum = 0.299 * c1[0] + 0.587 * c1[1] + 0.114 * c1[2]
        c2 = (20, 20, 24) if lum > 128 else (244, 244, 240)
    return c1, c2


def sample_garment_params(seed: int) -> GarmentParams:
    """Draw a garment from the garment stream of ``seed``."""
    rng = _garment_rng(seed)
    kind = str(rng.choice(GARMENT_KINDS))
    sleeves, necks, length, hem = _KIND_SHAPE[kind]
    pattern = str(rng.choice(PATTERNS, p=[0.25, 0.14, 0.12, 0.12, 0.12, 0.12, 0.13]))
    colour, colour2 = _garment_colours(rng)
    return GarmentParams(
        kind=kind,
        sleeve=str(rng.choice(sleeves)),
        neckline=str(rng.choice(necks)),
        length=float(rng.uniform(*length)),
        fit=float(rng.uniform(0.95, 1.16)),
        hem=float(rng.uniform(*hem)),
        colour=colour,
        colour2=colour2,
        pattern=pattern,
        period=float(rng.uniform(0.34, 0.5)),
        phase=float(rng.uniform(0.0, 1.0)),
        duty=float(rng.uniform(0.35, 0.55)),
        logo_shape=str(rng.choice(LOGO_SHAPES)),
        logo_size=float(rng.uniform(0.14, 0.2)),
        shop_bg=int(rng.integers(240, 253)),
    )


# ----------------------------------------------------------------------------------------------
# Geometry

Point = tuple[float, float]


@dataclass(frozen=True)
class _Skeleton:
    """Joint positions in output pixels plus the derived sizes the painter needs."""

    u: float
    cx: float
    head_c: Point
    head_rx: float
    head_ry: float
    top: float
    neck_y: float            # top of the shoulders
    sy: float                # shoulder joint height
    hip_y: float
    sw: float                # half shoulder width (px)
    hw: float                # half hip width (px)
    joints: dict[str, Point]


def _arm_points(shoulder: Point, side: int, upper: float, lower: float, l1: float, l2: float
                ) -> tuple[Point, Point]:
    a, b = math.radians(upper), math.radians(lower)
    elbow = (shoulder[0] + side * l1 * math.sin(a), shoulder[1] + l1 * math.cos(a))
    wrist = (elbow[0] + side * l2 * math.sin(b), elbow[1] + l2 * math.cos(b))
    return elbow, wrist


def _skeleton(p: PersonParams, size: tuple[int, int]) -> _Skeleton:
    H, W = size
    u = p.height * H
    cx = p.cx * W
    top = (H - u) / 2 + p.dy * H
    r = p.head * u
    head_c = (cx, top + r)
    neck_y = top + 2 * r + p.neck * u
    sy = neck_y + 0.02 * u
    hip_y = sy + p.torso * u
    legs = u - (2 * r + p.neck * u + 0.02 * u + p.torso * u + 0.02 * u)
    sw, hw = p.shoulder * u / 2, p.hip * u / 2
    j: dict[str, Point] = {}
    j["nose"] = (cx, head_c[1] + 0.3 * r)
    j["neck"] = (cx, sy)
    for name, side, upper, lower in (("r", -1, p.r_upper, p.r_lower), ("l", 1, p.l_upper, p.l_lower)):
        sh = (cx + side * sw, sy)
        elbow, wrist = _arm_points(sh, side, upper, lower, p.upper_arm * u, p.forearm * u)
        j[f"{name}_shoulder"], j[f"{name}_elbow"], j[f"{name}_wrist"] = sh, elbow, wrist
        hip = (cx + side * 0.6 * hw, hip_y)
        knee = (hip[0] + side * p.leg_spread * u * 0.4, hip_y + legs / 2)
        ankle = (hip[0] + side * p.leg_spread * u, hip_y + legs)
        j[f"{name}_hip"], j[f"{name}_knee"], j[f"{name}_ankle"] = hip, knee, ankle
        j[f"{name}_eye"] = (cx + side * 0.34 * 0.8 * r, head_c[1] - 0.05 * r)
        j[f"{name}_ear"] = (cx + side * 0.97 * 0.8 * r, head_c[1] + 0.05 * r)
    return _Skeleton(u=u, cx=cx, head_c=head_c, head_rx=0.8 * r, head_ry=r, top=top, neck_y=neck_y,
                     sy=sy, hip_y=hip_y, sw=sw, hw=hw, joints=j)


def _keypoints(sk: _Skeleton, size: tuple[int, int]) -> np.ndarray:
    H, W = size
    kp = np.zeros((18, 3), np.float32)
    for i, name in enumerate(KEYPOINT_NAMES):
        x, y = sk.joints[name]
        if 0 <= x <= W - 1 and 0 <= y <= H - 1:      # outside the picture: OpenPose reports 0,0,0
            kp[i] = (x, y, 1.0)
    return kp


# ----------------------------------------------------------------------------------------------
# Painting primitives: masks from Pillow, colours from NumPy, all at SUPERSAMPLE resolution.


class _Canvas:
    """A float RGB canvas at supersampled resolution; geometry arguments are in output pixels."""

    def __init__(self, size: tuple[int, int], fill: np.ndarray):
        self.H, self.W = size
        self.s = SUPERSAMPLE
        self.hs, self.ws = self.H * self.s, self.W * self.s
        self.rgb = np.empty((self.hs, self.ws, 3), np.float32)
        self.rgb[:] = fill

    def mask(self) -> tuple[Image.Image, "_Draw"]:
        img = Image.new("L", (self.ws, self.hs), 0)
        return img, _Draw(ImageDraw.Draw(img), self.s)

    def paint(self, mask: np.ndarray, colour: Sequence[float]) -> None:
        self.rgb[mask] = colour

    def paint_fn(self, mask: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """Colour each masked pixel by ``fn(x, y)`` with x, y the pixel centres in output pixels."""
        ys, xs = np.nonzero(mask)
        if len(xs):
            self.rgb[ys, xs] = fn((xs + 0.5) / self.s, (ys + 0.5) / self.s)

    def downsample(self) -> np.ndarray:
        """Box filter to output size: the anti-aliasing step (strided adds are ~10x a mean())."""
        small = _box_sum(self.rgb, self.s) / (self.s * self.s)
        return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _box_sum(a: np.ndarray, s: int) -> np.ndarray:
    """Sum of each s x s block over the first two axes."""
    rows = sum(a[i::s] for i in range(1, s))
    rows = a[0::s] + rows
    return rows[:, 0::s] + sum(rows[:, i::s] for i in range(1, s))


class _Draw:
    """ImageDraw wrapper taking output-pixel coordinates."""

    def __init__(self, draw: ImageDraw.ImageDraw, s: int):
        self.d, self.s = draw, s

    def polygon(self, pts: Sequence[Point]) -> None:
        self.d.polygon([(x * self.s, y * self.s) for x, y in pts], fill=255)

    def ellipse(self, c: Point, rx: float, ry: float | None = None) -> None:
        ry = rx if ry is None else ry
        x, y, s = c[0] * self.s, c[1] * self.s, self.s
        self.d.ellipse([x - rx * s, y - ry * s, x + rx * s, y + ry * s], fill=255)

    def limb(self, a: Point, b: Point, wa: float, wb: float | None = None) -> None:
        """A tapered segment with round ends (widths in output pixels)."""
        wb = wa if wb is None else wb
        dx, dy = b[0] - a[0], b[1] - a[1]
        n = math.hypot(dx, dy) or 1.0
        px, py = -dy / n, dx / n
        self.polygon([(a[0] + px * wa / 2, a[1] + py * wa / 2), (b[0] + px * wb / 2, b[1] + py * wb / 2),
                      (b[0] - px * wb / 2, b[1] - py * wb / 2), (a[0] - px * wa / 2, a[1] - py * wa / 2)])
        self.ellipse(a, wa / 2)
        self.ellipse(b, wb / 2)

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        s = self.s
        self.d.rectangle([x0 * s, y0 * s, x1 * s, y1 * s], fill=255)


def _as_bool(img: Image.Image) -> np.ndarray:
    return np.asarray(img) > 0


# ----------------------------------------------------------------------------------------------
# Garment shape and texture, in garment units (x right, y down, origin at the neckline top centre)


@dataclass(frozen=True)
class _GarmentShape:
    panel: list[Point]
    extras: list[tuple[list[Point], float]]   # (polygon, brightness factor): collars, lapels
    sleeve_units: float                          # in-shop sleeve length
    length_units: float


def _neckline(g: GarmentParams) -> tuple[float, list[Point]]:
    """Half width of the neck opening and the cut from the left to the right neck point."""
    if g.kind == "tank":
        nw, depth = 0.2, 0.28
    elif g.neckline == "collar":
        nw, depth = 0.15, 0.08
    else:
        nw, depth = 0.17, 0.17
    if g.neckline == "v":
        return nw, [(-nw, 0.0), (0.0, depth * 2.0), (nw, 0.0)]
    thetas = np.linspace(math.pi, 0.0, 9)
    return nw, [(nw * math.cos(t), depth * math.sin(t)) for t in thetas]


def _garment_shape(g: GarmentParams) -> _GarmentShape:
    L = g.length * _REF_TORSO
    nw, cut = _neckline(g)
    half = 0.5 * g.fit
    if g.sleeve == "none":                     # straps and deep armholes
        right = [(nw + 0.12, 0.0), (nw + 0.15, 0.14), (half - 0.06, 0.3), (half, 0.42)]
    else:
        right = [(0.5, _SHOULDER_Y), (half, 0.4)]
    if g.kind == "dress":
        waist = 0.62 * _REF_TORSO
        right += [(0.47 * g.fit, waist), (half * g.hem, L)]
    else:
        right += [(half * g.hem, L)]
    left = [(-x, y) for x, y in reversed(right)]
    panel = [(nw, 0.0)] + right + left + cut[:-1]
    extras: list[tuple[list[Point], float]] = []
    if g.kind == "shirt":
        extras.append(([(-0.17, -0.05), (0.17, -0.05), (0.15, 0.02), (-0.15, 0.02)], 0.7))
        for s in (-1, 1):
            extras.append(([(s * 0.02, 0.16), (s * 0.17, -0.04), (s * 0.22, 0.13)], 1.12))
    elif g.kind == "coat":
        extras.append(([(-0.17, -0.06), (0.17, -0.06), (0.15, 0.03), (-0.15, 0.03)], 0.7))
        for s in (-1, 1):
            extras.append(([(s * 0.02, 0.42), (s * 0.18, -0.05), (s * 0.3, 0.2)], 0.82))
    return _GarmentShape(panel=panel, extras=extras, sleeve_units=_SHOP_SLEEVE_UNITS[g.sleeve],
                         length_units=L)


def _pattern(g: GarmentParams, gx: np.ndarray, gy: np.ndarray, panel: bool) -> np.ndarray:
    """Garment colour at garment coordinates; ``panel`` is False on sleeves (no logo, no placket)."""
    p, ph = g.period, g.phase * g.period
    if g.pattern == "hstripes":
        t = ((gy + ph) / p) % 1.0 < g.duty
    elif g.pattern == "vstripes":
        t = ((gx + ph) / p) % 1.0 < g.duty
    elif g.pattern == "checks":
        t = (np.floor((gx + ph) / p) + np.floor((gy + ph) / p)) % 2 == 1
    elif g.pattern == "dots":
        row = np.floor((gy + ph) / p)
        dx = ((gx + ph + (row % 2) * p / 2) % p) - p / 2
        dy = ((gy + ph) % p) - p / 2
        t = dx * dx + dy * dy < (0.55 * g.duty * p) ** 2
    elif g.pattern == "gradient":
        t = np.clip(gy / (g.length * _REF_TORSO), 0.0, 1.0)
    elif g.pattern == "logo" and panel:
        t = _logo(g, gx, gy - 0.45)
    else:
        t = np.zeros_like(gx)
    t = np.asarray(t, np.float32)[:, None]
    rgb = (1 - t) * np.asarray(g.colour, np.float32) + t * np.asarray(g.colour2, np.float32)
    if panel and g.kind in ("shirt", "coat"):          # button placket down the centre
        rgb[(np.abs(gx) < 0.035) & (gy > 0.1)] *= 0.78
    return rgb


def _logo(g: GarmentParams, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = g.logo_size
    shape = g.logo_shape
    if shape == "circle":
        return x * x + y * y < r * r
    if shape == "ring":
        d = x * x + y * y
        return (d < r * r) & (d > (0.55 * r) ** 2)
    if shape == "square":
        return (np.abs(x) < 0.85 * r) & (np.abs(y) < 0.85 * r)
    if shape == "diamond":
        return np.abs(x) + np.abs(y) < 1.15 * r
    return (y < 0.8 * r) & (y > -r + 2 * np.abs(x))     # triangle, apex up


# ----------------------------------------------------------------------------------------------
# Person painting


def _background(p: PersonParams, size: tuple[int, int]) -> _Canvas:
    cv = _Canvas(size, np.asarray(p.bg_colour, np.float32))
    if p.background == "gradient":
        t = np.linspace(0.0, 1.0, cv.hs, dtype=np.float32)[:, None, None]
        cv.rgb[:] = (1 - t) * np.asarray(p.bg_colour, np.float32) + t * np.asarray(p.bg_colour2, np.float32)
    elif p.background == "wall":
        cv.rgb[int(p.horizon * cv.hs):] = p.bg_colour2
    return cv


def _shadow(cv: _Canvas, sk: _Skeleton) -> None:
    """A soft contact shadow under the feet, so the figure stands on something."""
    img, d = cv.mask()
    y = max(sk.joints["r_ankle"][1], sk.joints["l_ankle"][1]) + 0.025 * sk.u
    d.ellipse((sk.cx, y), 0.22 * sk.u, 0.025 * sk.u)
    cv.rgb[_as_bool(img)] *= 0.85


def _paint_hair_back(cv: _Canvas, p: PersonParams, sk: _Skeleton) -> None:
    if p.hair_style != "long":
        return
    img, d = cv.mask()
    x0, x1 = sk.cx - 1.15 * sk.head_rx, sk.cx + 1.15 * sk.head_rx
    d.rect(x0, sk.head_c[1], x1, sk.sy + p.hair_length * sk.u)
    d.ellipse((sk.cx, sk.sy + p.hair_length * sk.u), 1.15 * sk.head_rx, 0.03 * sk.u)
    cv.paint(_as_bool(img), p.hair_colour)


def _paint_legs(cv: _Canvas, p: PersonParams, sk: _Skeleton) -> None:
    j, u = sk.joints, sk.u
    img, d = cv.mask()
    top = sk.hip_y - 0.15 * p.torso * u
    waist = 0.5 * (0.8 * sk.sw + sk.hw)
    d.polygon([(sk.cx - waist, top), (sk.cx + waist, top), (sk.cx + sk.hw, sk.hip_y),
               (sk.cx + 0.9 * sk.hw, sk.hip_y + 0.05 * u), (sk.cx - 0.9 * sk.hw, sk.hip_y + 0.05 * u),
               (sk.cx - sk.hw, sk.hip_y)])
    for s in ("r", "l"):
        d.limb(j[f"{s}_hip"], j[f"{s}_knee"], 0.095 * u, 0.065 * u)
        d.limb(j[f"{s}_knee"], j[f"{s}_ankle"], 0.065 * u, 0.045 * u)
    cv.paint(_as_bool(img), p.legwear)
    img, d = cv.mask()
    for s, side in (("r", -1), ("l", 1)):
        ax, ay = j[f"{s}_ankle"]
        d.ellipse((ax + side * 0.012 * u, ay + 0.012 * u), 0.038 * u, 0.02 * u)
    cv.paint(_as_bool(img), p.shoes)


def _paint_torso(cv: _Canvas, p: PersonParams, sk: _Skeleton) -> None:
    u, cx, sw = sk.u, sk.cx, sk.sw
    T = p.torso * u
    img, d = cv.mask()
    d.limb((cx, sk.head_c[1]), (cx, sk.sy), 0.055 * u)
    right = [(cx - 0.8 * sw, sk.neck_y), (cx - sw, sk.sy + 0.01 * u), (cx - 0.95 * sw, sk.sy + 0.25 * T),
             (cx - 0.8 * sw, sk.sy + 0.6 * T), (cx - sk.hw, sk.hip_y)]
    left = [(2 * cx - x, y) for x, y in reversed(right)]
    d.polygon(right + left)
    cv.paint(_as_bool(img), p.skin)


def _paint_head(cv: _Canvas, p: PersonParams, sk: _Skeleton) -> None:
    img, d = cv.mask()
    d.ellipse(sk.head_c, sk.head_rx, sk.head_ry)
    cv.paint(_as_bool(img), p.skin)
    # hair cap: a slightly larger ellipse, cut off at the brow line
    img, d = cv.mask()
    hc = (sk.head_c[0], sk.head_c[1] - 0.06 * sk.head_ry)
    d.ellipse(hc, 1.08 * sk.head_rx, 1.04 * sk.head_ry)
    if p.hair_style == "bun":
        d.ellipse((sk.cx, sk.top - 0.05 * sk.head_ry), 0.45 * sk.head_ry)
    cap = _as_bool(img)
    cut = int((sk.head_c[1] - (0.2 if p.hair_style == "short" else 0.1) * sk.head_ry) * cv.s)
    cap[max(cut, 0):] = False
    if p.hair_style == "long":                 # hair falling down both sides of the face
        img2, d2 = cv.mask()
        for side in (-1, 1):
            x = sk.cx + side * 0.92 * sk.head_rx
            d2.limb((x, sk.head_c[1] - 0.3 * sk.head_ry), (x, sk.head_c[1] + 0.75 * sk.head_ry),
                    0.32 * sk.head_rx)
        cap |= _as_bool(img2)
    cv.paint(cap, p.hair_colour)


def _arm_order(p: PersonParams) -> list[str]:
    """Side arms first, the arm bent across the body last (it occludes the garment)."""
    if p.front_arm == "right":
        return ["l", "r"]
    return ["r", "l"]


def _arm_widths(u: float) -> tuple[float, float]:
    return 0.058 * u, 0.046 * u


def _paint_arm(cv: _Canvas, p: PersonParams, sk: _Skeleton, s: str) -> None:
    j, u = sk.joints, sk.u
    w1, w2 = _arm_widths(u)
    img, d = cv.mask()
    sh, el, wr = j[f"{s}_shoulder"], j[f"{s}_elbow"], j[f"{s}_wrist"]
    d.limb(sh, el, w1, 0.9 * w1)
    d.limb(el, wr, w2, 0.8 * w2)
    n = math.hypot(wr[0] - el[0], wr[1] - el[1]) or 1.0
    hand = (wr[0] + (wr[0] - el[0]) / n * 0.03 * u, wr[1] + (wr[1] - el[1]) / n * 0.03 * u)
    d.ellipse(hand, 0.03 * u, 0.03 * u)
    cv.paint(_as_bool(img), p.skin)


# ----------------------------------------------------------------------------------------------
# Worn garment


@dataclass(frozen=True)
class _WornFrame:
    """Affine placement of garment units on the person: x = ox + gx * ax, y = oy + gy * ay."""

    ox: float
    oy: float
    ax: float
    ay: float


def _worn_frame(p: PersonParams, sk: _Skeleton) -> _WornFrame:
    return _WornFrame(ox=sk.cx, oy=sk.sy - _GARMENT_TOP * sk.u, ax=2 * sk.sw,
                      ay=p.torso * sk.u / _REF_TORSO)


def _panel_shade(gx: np.ndarray, gy: np.ndarray, fit: float) -> np.ndarray:
    """Darker towards the torso sides, light from the image's upper left."""
    xr = np.clip(gx / (0.5 * fit), -1.2, 1.2)
    return (1.02 - 0.22 * xr * xr - 0.05 * xr - 0.03 * np.clip(gy, 0, 2))[:, None]


def _paint_worn_panel(cv: _Canvas, g: GarmentParams, f: _WornFrame, clip: np.ndarray) -> np.ndarray:
    shape = _garment_shape(g)
    to_px = [(f.ox + x * f.ax, f.oy + y * f.ay) for x, y in shape.panel]
    img, d = cv.mask()
    d.polygon(to_px)
    mask = _as_bool(img) & clip

    def colour(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        gx, gy = (x - f.ox) / f.ax, (y - f.oy) / f.ay
        return np.clip(_pattern(g, gx, gy, True) * _panel_shade(gx, gy, g.fit), 0, 255)

    cv.paint_fn(mask, colour)
    for poly, k in shape.extras:
        img, d = cv.mask()
        d.polygon([(f.ox + x * f.ax, f.oy + y * f.ay) for x, y in poly])
        m = _as_bool(img) & clip
        cv.paint_fn(m, lambda x, y, k=k: np.clip(
            np.asarray(g.colour, np.float32) * k * _panel_shade((x - f.ox) / f.ax, (y - f.oy) / f.ay, g.fit),
            0, 255))
        mask |= m
    return mask


def _sleeve_path(g: GarmentParams, p: PersonParams, sk: _Skeleton, s: str) -> list[Point]:
    """Points along the arm the sleeve covers: shoulder, (elbow), end."""
    j = sk.joints
    sh, el, wr = j[f"{s}_shoulder"], j[f"{s}_elbow"], j[f"{s}_wrist"]

    def lerp(a: Point, b: Point, t: float) -> Point:
        return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)

    if g.sleeve == "short":
        return [sh, lerp(sh, el, 0.45)]
    if g.sleeve == "three_quarter":
        return [sh, el, lerp(el, wr, 0.5)]
    return [sh, el, lerp(el, wr, 0.93)]


def _along_across(x: np.ndarray, y: np.ndarray, path: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    """Distance along a polyline and signed distance across it, for the nearest segment."""
    best_d = np.full(x.shape, np.inf, np.float32)
    along = np.zeros(x.shape, np.float32)
    across = np.zeros(x.shape, np.float32)
    start = 0.0
    for a, b in zip(path[:-1], path[1:]):
        dx, dy = b[0] - a[0], b[1] - a[1]
        n = math.hypot(dx, dy) or 1.0
        ux, uy = dx / n, dy / n
        rx, ry = x - a[0], y - a[1]
        t = rx * ux + ry * uy
        c = -rx * uy + ry * ux
        dist = np.abs(c) + np.maximum(0.0, -t) + np.maximum(0.0, t - n)
        better = dist < best_d
        best_d = np.where(better, dist, best_d)
        along = np.where(better, start + np.clip(t, 0.0, n), along)
        across = np.where(better, c, across)
        start += n
    return along, across


def _paint_sleeve(cv: _Canvas, g: GarmentParams, path: Sequence[Point], unit: float,
                  clip: np.ndarray | None, shade: bool) -> np.ndarray:
    """A sleeve of width _SLEEVE_WIDTH units along ``path`` (output px); ``unit`` = px per unit."""
    w = _SLEEVE_WIDTH * unit
    img, d = cv.mask()
    for a, b in zip(path[:-1], path[1:]):
        d.limb(a, b, w, 0.9 * w)
    mask = _as_bool(img) if clip is None else _as_bool(img) & clip

    def colour(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        along, across = _along_across(x, y, path)
        gx, gy = across / unit, along / unit
        rgb = _pattern(g, gx, gy, False)
        if shade:
            xr = np.clip(gx / (0.5 * _SLEEVE_WIDTH), -1.2, 1.2)
            rgb = rgb * (1.0 - 0.25 * xr * xr)[:, None] * 0.96
        return np.clip(rgb, 0, 255)

    cv.paint_fn(mask, colour)
    return mask


# ----------------------------------------------------------------------------------------------
# Agnostic region


def _agnostic_mask(cv: _Canvas, p: PersonParams, sk: _Skeleton) -> np.ndarray:
    """Torso, both arms and the hip-to-knee zone; depends on the person only, never the garment.

    Sized to contain every garment this generator can make (widest dress hem, longest sleeve,
    collars); the garment is additionally clipped to this mask, so nothing of it can leak.
    """
    f = _worn_frame(p, sk)
    j = sk.joints
    knee_y = max(j["r_knee"][1], j["l_knee"][1]) + 0.04 * sk.u
    top = f.oy - 0.15 * f.ax
    img, d = cv.mask()
    d.polygon([(sk.cx - 0.66 * f.ax, top), (sk.cx + 0.66 * f.ax, top),
               (sk.cx + 0.92 * f.ax, knee_y), (sk.cx - 0.92 * f.ax, knee_y)])
    w = (_SLEEVE_WIDTH + 0.12) * f.ax
    for s in ("r", "l"):
        sh, el, wr = j[f"{s}_shoulder"], j[f"{s}_elbow"], j[f"{s}_wrist"]
        d.limb(sh, el, w)
        d.limb(el, wr, w)
        n = math.hypot(wr[0] - el[0], wr[1] - el[1]) or 1.0
        hand = (wr[0] + (wr[0] - el[0]) / n * 0.03 * sk.u, wr[1] + (wr[1] - el[1]) / n * 0.03 * sk.u)
        d.ellipse(hand, 0.045 * sk.u)
    return _as_bool(img)


# ----------------------------------------------------------------------------------------------
# Public renderers


def _render_person(p: PersonParams, g: GarmentParams, size: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint person + garment back to front; returns person, agnostic, keypoints."""
    sk = _skeleton(p, size)
    cv = _background(p, size)
    _shadow(cv, sk)
    _paint_hair_back(cv, p, sk)
    _paint_legs(cv, p, sk)
    _paint_torso(cv, p, sk)
    zone = _agnostic_mask(cv, p, sk)
    frame = _worn_frame(p, sk)
    _paint_worn_panel(cv, g, frame, zone)
    for s in _arm_order(p):
        _paint_arm(cv, p, sk, s)
        if g.sleeve != "none":
            _paint_sleeve(cv, g, _sleeve_path(g, p, sk, s), frame.ax, zone, shade=True)
    _paint_head(cv, p, sk)
    person = cv.downsample()
    return person, _render_agnostic(p, sk, size), _keypoints(sk, size)


def _render_agnostic(p: PersonParams, sk: _Skeleton, size: tuple[int, int]) -> np.ndarray:
    """The person without the top garment: torso and arms as a grey body silhouette.

    Like the body-shape channel of VITON / CP-VTON, the silhouette tells the generator where the
    body is without revealing anything of the garment worn (it is drawn from the person alone;
    legwear, head and background stay as they are).
    """
    cv = _background(p, size)
    _shadow(cv, sk)
    _paint_hair_back(cv, p, sk)
    _paint_legs(cv, p, sk)
    grey = replace(p, skin=(AGNOSTIC_GREY,) * 3)
    _paint_torso(cv, grey, sk)
    for s in _arm_order(p):
        _paint_arm(cv, grey, sk, s)
    _paint_head(cv, p, sk)
    return cv.downsample()


def _render_shop(g: GarmentParams, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The garment laid flat and centred, sleeves out at a fixed angle."""
    H, W = size
    shape = _garment_shape(g)
    a = math.radians(_SHOP_SLEEVE_DEG)
    roots = [(-0.44, _SHOULDER_Y + 0.06), (0.44, _SHOULDER_Y + 0.06)]
    ends = [(x + math.copysign(1, x) * shape.sleeve_units * math.sin(a), y + shape.sleeve_units * math.cos(a))
            for x, y in roots]
    pts = list(shape.panel) + [pt for poly, _ in shape.extras for pt in poly]
    if g.sleeve != "none":
        r = _SLEEVE_WIDTH / 2
        pts += [(x + dx, y + dy) for x, y in ends for dx in (-r, r) for dy in (-r, r)]
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    # fit the canvas, but never blow small garments (tanks) up beyond half the width per unit
    scale = min(0.88 * W / (max(xs) - min(xs)), 0.88 * H / (max(ys) - min(ys)), 0.5 * W)
    ox = W / 2 - scale * (max(xs) + min(xs)) / 2
    oy = H / 2 - scale * (max(ys) + min(ys)) / 2
    cv = _Canvas(size, np.float32(g.shop_bg))
    cover = np.zeros((cv.hs, cv.ws), bool)
    if g.sleeve != "none":                    # sleeves first: the body panel overlaps their roots
        for (rx, ry), (ex, ey) in zip(roots, ends):
            path = [(ox + rx * scale, oy + ry * scale), (ox + ex * scale, oy + ey * scale)]
            cover |= _paint_sleeve(cv, g, path, scale, None, shade=False)
    frame = _WornFrame(ox=ox, oy=oy, ax=scale, ay=scale)
    panel_img, d = cv.mask()
    d.polygon([(ox + x * scale, oy + y * scale) for x, y in shape.panel])
    panel = _as_bool(panel_img)

    def flat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        gx, gy = (x - ox) / scale, (y - oy) / scale
        xr = np.clip(gx / (0.5 * g.fit), -1.2, 1.2)[:, None]
        return np.clip(_pattern(g, gx, gy, True) * (1.0 - 0.06 * xr * xr), 0, 255)

    cv.paint_fn(panel, flat)
    cover |= panel
    for poly, k in shape.extras:
        img, d = cv.mask()
        d.polygon([(frame.ox + x * scale, frame.oy + y * scale) for x, y in poly])
        m = _as_bool(img)
        cv.paint(m, np.clip(np.asarray(g.colour, np.float32) * k, 0, 255))
        cover |= m
    s = cv.s
    coverage = _box_sum(cover.astype(np.float32), s)
    mask = np.where(coverage >= 0.5 * s * s, 255, 0).astype(np.uint8)
    return cv.downsample(), mask


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2:
        raise ValueError(f"size must be (H, W), got {size!r}")
    H, W = int(size[0]), int(size[1])
    if H < 32 or W < 32:
        raise ValueError(f"size must be at least 32x32, got {H}x{W}")
    return H, W


def render_garment(seed: int, size: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """The in-shop garment of ``seed`` alone: uint8 (H, W, 3) image and (H, W) 0/255 mask.

    Any size works (the DCGAN trainer uses 64x64); the garment is the one ``render_sample(seed)``
    dresses its person in.
    """
    return _render_shop(sample_garment_params(seed), _check_size(size))


def render_tryon(person_seed: int, garment_seed: int, size: tuple[int, int] = (64, 48)) -> TryOnSample:
    """The person of ``person_seed`` wearing the garment of ``garment_seed``.

    Person and garment come from independent random streams, so any pair can be rendered: this
    produces exact ground truth for unpaired try-on, which real data sets cannot offer.
    """
    size = _check_size(size)
    p, g = sample_person_params(person_seed), sample_garment_params(garment_seed)
    person, agnostic, keypoints = _render_person(p, g, size)
    cloth, cloth_mask = _render_shop(g, size)
    return TryOnSample(person=person, cloth=cloth, cloth_mask=cloth_mask, agnostic=agnostic,
                       keypoints=keypoints, person_params=p, garment_params=g,
                       person_seed=int(person_seed), garment_seed=int(garment_seed))


def render_sample(seed: int, size: tuple[int, int] = (64, 48)) -> TryOnSample:
    """The paired sample of ``seed``: its person wearing its own garment (== render_tryon(s, s))."""
    return render_tryon(seed, seed, size)


# ----------------------------------------------------------------------------------------------
# Data set writer (VITON-HD layout)

_SUBDIRS = ("image", "cloth", "cloth-mask", "agnostic-v3.2", "openpose_json")


def sample_seed(dataset_seed: int, index: int) -> int:
    """Seed of sample ``index`` of a data set: a pure function of both, whatever the worker count."""
    state = np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _stem(index: int) -> str:
    return f"{index:06d}_00"


@dataclass(frozen=True)
class _Task:
    index: int
    split: str
    seed: int
    cloth_index: int | None      # unpaired test partner whose garment this person tries on
    cloth_seed: int | None
    root: str
    size: tuple[int, int]


def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG")


def _openpose_json(kp: np.ndarray) -> str:
    flat = [round(float(v), 3) for v in kp.reshape(-1)]
    return json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": flat}]})


def _write_task(task: _Task) -> int:
    """Render and write one sample (and its unpaired ground truth for test samples)."""
    root = Path(task.root) / task.split
    stem = _stem(task.index)
    s = render_tryon(task.seed, task.seed, task.size)
    _save_png(s.person, root / "image" / f"{stem}.png")
    _save_png(s.cloth, root / "cloth" / f"{stem}.png")
    _save_png(s.cloth_mask, root / "cloth-mask" / f"{stem}.png")
    _save_png(s.agnostic, root / "agnostic-v3.2" / f"{stem}.png")
    (root / "openpose_json" / f"{stem}_keypoints.json").write_text(_openpose_json(s.keypoints))
    if task.cloth_seed is not None and task.cloth_index is not None:
        gt = render_tryon(task.seed, task.cloth_seed, task.size)
        _save_png(gt.person, root / "tryon-gt" / f"{stem}__{_stem(task.cloth_index)}.png")
    return task.index


def _derangement(indices: list[int], seed: int) -> dict[int, int]:
    """Person -> cloth partner with nobody paired to itself (a shuffled cycle)."""
    if len(indices) < 2:
        return {i: i for i in indices}
    order = np.random.default_rng([int(seed), 0x7E57]).permutation(indices)
    return {int(order[k]): int(order[(k + 1) % len(order)]) for k in range(len(order))}


def _prepare_target(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if out_dir.is_symlink() or not out_dir.is_dir():
            raise FileExistsError(f"{out_dir} exists and is not a directory; choose another --out")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"{out_dir} already exists and is not empty; pass overwrite=True to replace it")
            refuse_unless_ours(out_dir, "dataset", "--overwrite")


def make_dataset(out_dir: str | os.PathLike, n: int, seed: int = 0, size: tuple[int, int] = (64, 48),
                 test_fraction: float = 0.1, workers: int | None = None, progress: bool = True,
                 overwrite: bool = False) -> Path:
    """Write ``n`` samples in the VITON-HD folder layout and return the data set path.

    The last ``round(n * test_fraction)`` samples (at least 2 when n >= 4 and the fraction is
    positive, so they can be deranged) form the test split. Train pairs are paired (VITON-HD
    convention); test pairs are unpaired and come with rendered ground truth in ``test/tryon-gt``.
    The output is byte-identical for any ``workers``; it appears atomically (written to a hidden
    sibling directory and renamed), and nothing is left behind on error or Ctrl-C. ``overwrite``
    replaces only a data set this function wrote (its ``.fpga_gan`` marker), never another directory.
    """
    out_dir = Path(out_dir)
    size = _check_size(size)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    _prepare_target(out_dir, overwrite)
    n_test = int(round(n * test_fraction))
    if test_fraction > 0 and n >= 4:
        n_test = max(n_test, 2)
    n_test = min(n_test, n - 1)
    train_idx, test_idx = list(range(n - n_test)), list(range(n - n_test, n))
    partner = _derangement(test_idx, seed)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        for split in ("train", "test"):
            for sub in _SUBDIRS:
                (partial / split / sub).mkdir(parents=True)
        (partial / "test" / "tryon-gt").mkdir()
        tasks = [_Task(k, "train", sample_seed(seed, k), None, None, str(partial), size) for k in train_idx]
        tasks += [_Task(k, "test", sample_seed(seed, k), partner[k], sample_seed(seed, partner[k]),
                        str(partial), size) for k in test_idx]
        _run_tasks(tasks, workers, progress)
        _write_index(partial, train_idx, test_idx, partner, seed, n, size, test_fraction)
        publish_dir(partial, out_dir, "dataset", "--overwrite")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


def _run_tasks(tasks: list[_Task], workers: int | None, progress: bool) -> None:
    from tqdm import tqdm

    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    bar = tqdm(total=len(tasks), disable=not progress, unit="sample", desc="rendering")
    try:
        if workers == 1:
            for t in tasks:
                _write_task(t)
                bar.update()
            return
        import multiprocessing as mp

        chunk = max(1, min(64, len(tasks) // (workers * 8)))
        with mp.Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_task, tasks, chunksize=chunk):
                bar.update()
    finally:
        bar.close()


def _write_index(root: Path, train_idx: list[int], test_idx: list[int], partner: dict[int, int],
                 seed: int, n: int, size: tuple[int, int], test_fraction: float) -> None:
    (root / "train_pairs.txt").write_text(
        "".join(f"{_stem(k)}.png {_stem(k)}.png\n" for k in train_idx))
    (root / "test_pairs.txt").write_text(
        "".join(f"{_stem(k)}.png {_stem(partner[k])}.png\n" for k in test_idx))
    meta = {
        "generator": "fpga_gan.data.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "n": int(n),
        "size": [size[0], size[1]],
        "test_fraction": float(test_fraction),
        "counts": {"train": len(train_idx), "test": len(test_idx)},
        "test_pairs": "unpaired (derangement); ground truth in test/tryon-gt/<person>__<cloth>.png",
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


def params_dict(sample: TryOnSample) -> dict:
    """Person and garment parameters as plain JSON-able dicts (for logging and inspection)."""
    return {"person": asdict(sample.person_params), "garment": asdict(sample.garment_params)}
