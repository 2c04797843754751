"""Loader for the VITON-HD folder layout (the real data set or our synthetic one).

Layout (per split)::

    root/<split>/image/<name>            person photo (.jpg in VITON-HD, .png in ours)
    root/<split>/cloth/<name>            in-shop garment
    root/<split>/cloth-mask/<name>       its mask
    root/<split>/agnostic-v3.2/<name>    person with the clothing region greyed out
    root/<split>/openpose_json/<stem>_keypoints.json
    root/<split>/tryon-gt/<person stem>__<cloth stem>.png   (ours only: unpaired ground truth)
    root/<split>_pairs.txt               "<person name> <cloth name>" per line

Why a loader of its own: the try-on generator consumes ONE stacked tensor (so the FPGA accelerator has
a single input stream), and that packing must be identical in training, export and hardware tests.
:func:`tryon_input` is that packing, defined once here. Nothing here imports torch, so data handling
works in processes that never touch a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .._files import UnsafePathError, inside
from ..errors import UserError

__all__ = [
    "TRYON_IN_CHANNELS",
    "BODY25_TO_COCO18",
    "DatasetError",
    "TryOnItem",
    "TryOnDataset",
    "pose_heatmaps",
    "tryon_input",
    "align_cloth",
    "load_arrays",
    "read_pairs",
]

#: Generator input channels: agnostic RGB (3) + pose heatmaps (18) + in-shop cloth RGB (3).
TRYON_IN_CHANNELS = 24

#: For each COCO-18 keypoint, its index in OpenPose BODY_25 (BODY_25 adds mid-hip and feet).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

_IMAGE_EXTS = (".jpg", ".jpeg", ".png")
#: Decoders we let PIL use on data set files (VITON-HD is JPEG, ours PNG): fewer parsers, less risk.
_IMAGE_FORMATS = ("PNG", "JPEG")
#: Largest image decoded (width x height), checked from the header before any pixel is decoded:
#: 4096 x 4096 is 21x VITON-HD's 1024 x 768; a 20000 x 20000 "image" would need 1.2 GB as RGB.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Smallest side of a person, garment or mask image: below this there is nothing to dress.
MIN_IMAGE_SIDE = 8
#: Size limits of the text files, checked before they are read.
MAX_KEYPOINT_JSON_BYTES = 1 << 20
MAX_PAIRS_FILE_BYTES = 16 << 20


class DatasetError(UserError, ValueError):
    """A data set is missing something or holds something unreadable; the message names it."""


@dataclass
class TryOnItem:
    """One (person, cloth) pair, resized to the data set size; images uint8 (H, W, 3)."""

    person_name: str
    cloth_name: str
    person: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray       # uint8 (H, W), 0 or 255
    agnostic: np.ndarray
    keypoints: np.ndarray        # float32 (18, 3) COCO-18: x, y (pixels at the data set size), conf
    heatmaps: np.ndarray         # uint8 (18, H, W)
    target: np.ndarray | None    # the person wearing the cloth, when known


# ----------------------------------------------------------------------------------------------
# Pose encoding and input packing


def pose_heatmaps(keypoints: np.ndarray, size: tuple[int, int], sigma: float | None = None) -> np.ndarray:
    """One Gaussian blob per COCO-18 keypoint, uint8 (18, H, W) with peak 255.

    ``sigma`` defaults to 1.5 px at 64 rows and scales with the height, so the encoding looks
    the same at every resolution. Keypoints with confidence 0 give an all-zero channel, which
    tells the generator "not detected" instead of "at the origin".
    """
    H, W = int(size[0]), int(size[1])
    kp = np.asarray(keypoints, np.float32)
    if kp.shape != (18, 3):
        raise ValueError(f"keypoints must be (18, 3), got {kp.shape}")
    sigma = 1.5 * H / 64.0 if sigma is None else float(sigma)
    ys = np.arange(H, dtype=np.float32)[:, None]
    xs = np.arange(W, dtype=np.float32)[None, :]
    out = np.zeros((18, H, W), np.uint8)
    for i, (x, y, c) in enumerate(kp):
        if c <= 0:
            continue
        d2 = (xs - x) ** 2 + (ys - y) ** 2
        out[i] = np.rint(255.0 * np.exp(-d2 / (2.0 * sigma * sigma))).astype(np.uint8)
    return out


# Body-proportion priors of align_cloth (garment body width and torso length per shoulder span,
# garment top above the neck per torso length), measured on mannequins and typical garments.
_BODY_FIT = 1.05
_TORSO_PER_SHOULDER = 1.2
_TOP_ABOVE_NECK = 0.14


def _panel_width(row: np.ndarray, centre: int) -> int:
    """Width of the garment body in one mask row: the run through ``centre``, bridging a neck cut.

    Sleeves hang apart from the body below the armpits, so the run through the centre column
    measures the body alone; a V neck leaves the centre empty, so the walk first crosses the gap.
    """
    left = centre
    while left > 0 and not row[left]:
        left -= 1
    while left > 0 and row[left - 1]:
        left -= 1
    right = centre
    while right < len(row) - 1 and not row[right]:
        right += 1
    while right < len(row) - 1 and row[right + 1]:
        right += 1
    return right - left + 1 if row[left] and row[right] else 0


def align_cloth(cloth: np.ndarray, cloth_mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Place the in-shop garment over the person's torso: a keypoint-driven scale-and-shift warp.

    The geometric-matching step of VITON / CP-VTON reduced to an axis-aligned affine, so the
    generator's convolutions only fix the local misfit (sleeves, drape, occlusion):

    * width: the garment body at its narrowest between 30% and 60% of its height (below the
      armpits, above the hem; sleeves there hang apart from it) spans ``_BODY_FIT`` shoulder spans.
      The top edge width would be wrong by the sleeves (about 20% too small for sleeved garments)
      or by the straps (50% too big for tanks).
    * height: in-shop photos are isotropic, bodies are not; the vertical scale follows the
      person's torso length (neck to mid-hip) at the reference proportion ``_TORSO_PER_SHOULDER``.
    * position: centred on the neck, top edge ``_TOP_ABOVE_NECK`` torso lengths above it.

    On the synthetic world these constants put scale within 5% (spread 6%, the garments' own fit)
    and the top edge within a pixel. Pixels outside the garment are 0. Works on any data set with
    a cloth mask and OpenPose keypoints; without both hips the vertical scale equals the horizontal.
    """
    cloth, cloth_mask = np.asarray(cloth), np.asarray(cloth_mask)
    H, W = cloth_mask.shape
    inside = cloth_mask > 127
    ys, xs = np.nonzero(inside)
    kp = np.asarray(keypoints, np.float32)
    if len(xs) == 0 or not (kp[[1, 2, 5], 2] > 0).all():        # neck and both shoulders needed
        return np.zeros_like(cloth)
    y0, y1 = ys.min(), ys.max() + 1
    top = ys < y0 + max(2, 0.1 * (y1 - y0))
    centre_src = (xs[top].max() + 1 + xs[top].min()) / 2
    band = range(y0 + int(0.3 * (y1 - y0)), y0 + int(0.6 * (y1 - y0)) + 1)
    widths = [w for w in (_panel_width(inside[y], min(int(centre_src), W - 1)) for y in band) if w > 0]
    width_src = min(widths) if widths else xs.max() + 1 - xs.min()
    neck, r_sh, l_sh = kp[1, :2], kp[2, :2], kp[5, :2]
    span = max(abs(float(l_sh[0] - r_sh[0])), 1.0)
    scale_x = _BODY_FIT * span / width_src
    if (kp[[8, 11], 2] > 0).all():
        torso = max(float((kp[8, 1] + kp[11, 1]) / 2 - neck[1]), 1.0)
    else:
        torso = _TORSO_PER_SHOULDER * span
    scale_y = scale_x * torso / (_TORSO_PER_SHOULDER * span)
    tx = neck[0] - centre_src * scale_x
    ty = neck[1] - _TOP_ABOVE_NECK * torso - y0 * scale_y
    inverse = (1 / scale_x, 0, -tx / scale_x, 0, 1 / scale_y, -ty / scale_y)
    warped = np.asarray(Image.fromarray(cloth).transform((W, H), Image.AFFINE, inverse, Image.BILINEAR))
    mask = np.asarray(Image.fromarray(cloth_mask).transform((W, H), Image.AFFINE, inverse, Image.BILINEAR))
    return np.where((mask >= 128)[..., None], warped, 0).astype(np.uint8)


def tryon_input(item: Any, heatmaps: np.ndarray | None = None, cloth: np.ndarray | None = None) -> np.ndarray:
    """THE generator input packing: uint8 (24, H, W) = agnostic RGB, 18 pose heatmaps, cloth RGB.

    Call it either with an item (a :class:`TryOnItem`, or any object with ``agnostic``, ``cloth``,
    ``cloth_mask``, ``keypoints`` and optionally ``heatmaps``, such as a synthetic
    ``TryOnSample``), in which case the cloth is first placed on the body by :func:`align_cloth`,
    or with three arrays ``tryon_input(agnostic, heatmaps, aligned_cloth)``. Channel order is
    fixed: 0-2 agnostic R, G, B; 3-20 heatmaps in COCO-18 order; 21-23 aligned cloth R, G, B.
    Training, export and the FPGA test benches all use this function, so they never disagree.
    """
    if heatmaps is None and cloth is None:
        agnostic = item.agnostic
        cloth = align_cloth(item.cloth, item.cloth_mask, item.keypoints)
        heatmaps = getattr(item, "heatmaps", None)
        if heatmaps is None:
            heatmaps = pose_heatmaps(item.keypoints, agnostic.shape[:2])
    elif heatmaps is None or cloth is None:
        raise TypeError("tryon_input takes an item, or all three of agnostic, heatmaps, cloth")
    else:
        agnostic = item
    agnostic, heatmaps, cloth = np.asarray(agnostic), np.asarray(heatmaps), np.asarray(cloth)
    H, W = agnostic.shape[:2]
    if agnostic.shape != (H, W, 3) or cloth.shape != (H, W, 3) or heatmaps.shape != (18, H, W):
        raise ValueError(f"shape mismatch: agnostic {agnostic.shape}, heatmaps {heatmaps.shape}, "
                         f"cloth {cloth.shape}; expected (H, W, 3), (18, H, W), (H, W, 3)")
    for name, a in (("agnostic", agnostic), ("heatmaps", heatmaps), ("cloth", cloth)):
        if a.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8, got {a.dtype}")
    return np.concatenate([agnostic.transpose(2, 0, 1), heatmaps, cloth.transpose(2, 0, 1)], axis=0)


# ----------------------------------------------------------------------------------------------
# File access


def _find_image(folder: Path, name: str) -> Path:
    """The named file, or the same stem with another image extension (.jpg <-> .png).

    ``name`` comes from a pairs file or the command line: it must name a file inside ``folder``.
    """
    try:
        path = inside(folder, name, "image name")
    except UnsafePathError as e:
        raise DatasetError(f"{e} (from the pairs file or --person/--cloth)") from None
    if path.is_file():
        return path
    stem = Path(name).stem
    for ext in _IMAGE_EXTS:
        alt = path.with_name(f"{stem}{ext}")
        if alt.is_file():
            return inside(folder, str(alt.relative_to(folder)), "image name")
    raise DatasetError(f"missing image file: {path}")


def _open_image(path: Path, mode: str) -> Image.Image:
    """Decode an untrusted PNG or JPEG, refusing oversized or degenerate ones before decoding."""
    try:
        with Image.open(path, formats=_IMAGE_FORMATS) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DatasetError(f"image {path} is {width}x{height} pixels, over the limit of "
                                   f"{MAX_IMAGE_PIXELS:,} pixels; resize it (the model runs at a few dozen pixels)")
            if min(width, height) < MIN_IMAGE_SIDE:
                raise DatasetError(f"image {path} is {width}x{height} pixels; each side must be at least "
                                   f"{MIN_IMAGE_SIDE}")
            img.load()
            return img.convert(mode)
    except Image.DecompressionBombError as e:     # PIL's own check, at open, for far larger headers
        raise DatasetError(f"image {path} is over the limit of {MAX_IMAGE_PIXELS:,} pixels ({e}); "
                           "resize it") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def _read_text_limited(path: Path, limit: int, what: str) -> str:
    size = path.stat().st_size
    if size > limit:
        raise DatasetError(f"{what} {path} is {size:,} bytes, over the limit of {limit:,}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {what} {path}: {e}") from None


def _load_rgb(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 (H, W, 3) at ``size`` (bilinear) and the original (H, W)."""
    img = _open_image(path, "RGB")
    orig = (img.height, img.width)
    if orig != size:
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(img, np.uint8).copy(), orig


def _load_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) 0/255 at ``size`` (nearest, then thresholded: JPEG masks are not binary)."""
    img = _open_image(path, "L")
    if (img.height, img.width) != size:
        img = img.resize((size[1], size[0]), Image.NEAREST)
    return np.where(np.asarray(img) >= 128, 255, 0).astype(np.uint8)


def _load_keypoints(path: Path, orig: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """COCO-18 (18, 3) float32 scaled from the original image size to ``size``."""
    if not path.is_file():
        raise DatasetError(f"missing keypoint file: {path}")
    try:
        data = json.loads(_read_text_limited(path, MAX_KEYPOINT_JSON_BYTES, "keypoint JSON"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"cannot read keypoint JSON {path}: {e}") from e
    people = data.get("people") if isinstance(data, dict) else None
    if not people or not isinstance(people[0], dict) or "pose_keypoints_2d" not in people[0]:
        raise DatasetError(f"{path}: no people / pose_keypoints_2d in OpenPose JSON")
    try:
        flat = np.asarray(people[0]["pose_keypoints_2d"], np.float32).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{path}: pose_keypoints_2d must be a list of numbers ({e})") from None
    if not np.isfinite(flat).all():
        raise DatasetError(f"{path}: pose_keypoints_2d holds NaN or infinite values")
    if flat.size == 75:
        kp = flat.reshape(25, 3)[list(BODY25_TO_COCO18)]
    elif flat.size == 54:
        kp = flat.reshape(18, 3)
    else:
        raise DatasetError(f"{path}: expected 54 (COCO-18) or 75 (BODY_25) pose values, got {flat.size}")
    kp = kp.copy()
    kp[:, 0] *= size[1] / orig[1]
    kp[:, 1] *= size[0] / orig[0]
    kp[kp[:, 2] <= 0] = 0.0
    return kp


def read_pairs(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise DatasetError(f"missing pairs file: {path}")
    pairs = []
    for lineno, line in enumerate(_read_text_limited(path, MAX_PAIRS_FILE_BYTES, "pairs file").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names = line.split()
        if len(names) != 2:
            raise DatasetError(f"{path}:{lineno}: expected '<person> <cloth>', got {line!r}")
        pairs.append((names[0], names[1]))
    return pairs


# ----------------------------------------------------------------------------------------------
# Data set


class TryOnDataset:
    """Indexable VITON-HD style data set: ``ds[i]`` is a :class:`TryOnItem`, ``len(ds)`` pairs.

    Everything is resized to ``size`` = (H, W) on load (bilinear for images, nearest for masks),
    and keypoints are scaled by the person image's original size, so real 1024x768 VITON-HD and
    our 64x48 data come out alike. BODY_25 keypoints are mapped to COCO-18.
    """

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = (64, 48),
                 pairs_file: str | Path | None = None,
                 pairs: list[tuple[str, str]] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"data set root not found: {self.root}")
        self.split = split
        try:
            self.dir = inside(self.root, split, "split")
        except UnsafePathError as e:
            raise DatasetError(str(e)) from None
        if not self.dir.is_dir():
            raise DatasetError(f"split directory not found: {self.dir}")
        self.size = (int(size[0]), int(size[1]))
        self.pairs_file = Path(pairs_file) if pairs_file is not None else self.root / f"{split}_pairs.txt"
        # Explicit pairs (e.g. one person and one garment chosen by a user) replace the file.
        self.pairs = list(pairs) if pairs is not None else read_pairs(self.pairs_file)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"TryOnDataset({str(self.root)!r}, split={self.split!r}, size={self.size}, pairs={len(self)})"

    def _target_path(self, person: str, cloth: str) -> Path | None:
        folder = self.dir / "tryon-gt"
        stem = f"{Path(person).stem}__{Path(cloth).stem}"
        for ext in (".png", ".jpg", ".jpeg"):
            p = folder / f"{stem}{ext}"
            if p.is_file():
                return p
        return None

    def has_target_for(self, index: int) -> bool:
        person, cloth = self.pairs[index]
        return person == cloth or self._target_path(person, cloth) is not None

    @property
    def has_target(self) -> bool:
        """True when every pair has a target (paired, or unpaired with rendered ground truth)."""
        return all(self.has_target_for(i) for i in range(len(self)))

    def __getitem__(self, index: int) -> TryOnItem:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        person_name, cloth_name = self.pairs[index]
        size, d = self.size, self.dir
        person, orig = _load_rgb(_find_image(d / "image", person_name), size)
        cloth, _ = _load_rgb(_find_image(d / "cloth", cloth_name), size)
        cloth_mask = _load_mask(_find_image(d / "cloth-mask", cloth_name), size)
        agnostic, _ = _load_rgb(_find_image(d / "agnostic-v3.2", person_name), size)
        kp_path = d / "openpose_json" / f"{Path(person_name).stem}_keypoints.json"
        keypoints = _load_keypoints(kp_path, orig, size)
        target_path = self._target_path(person_name, cloth_name)
        if target_path is not None:
            target, _ = _load_rgb(target_path, size)
        elif person_name == cloth_name:
            target = person
        else:
            target = None
        return TryOnItem(person_name=person_name, cloth_name=cloth_name, person=person, cloth=cloth,
                         cloth_mask=cloth_mask, agnostic=agnostic, keypoints=keypoints,
                         heatmaps=pose_heatmaps(keypoints, size), target=target)


def load_arrays(root: str | Path, split: str = "train", size: tuple[int, int] = (64, 48),
                limit: int | None = None) -> dict[str, Any]:
    """Whole split as stacked arrays for training: ``x`` uint8 (N, 24, H, W), ``y`` uint8 (N, 3, H, W).

    ``y`` is None when some pair has no target. Also returns ``person_names``, ``cloth_names``
    and ``cloth_mask`` (N, H, W). No caching: a 20k-sample 64x48 split loads in well under a minute.
    """
    ds = TryOnDataset(root, split, size)
    n = len(ds) if limit is None else min(len(ds), int(limit))
    H, W = ds.size
    x = np.empty((n, TRYON_IN_CHANNELS, H, W), np.uint8)
    masks = np.empty((n, H, W), np.uint8)
    paired = all(ds.has_target_for(i) for i in range(n))
    y: np.ndarray | None = np.empty((n, 3, H, W), np.uint8) if paired else None
    persons, cloths = [], []
    for i in range(n):
        item = ds[i]
        x[i] = tryon_input(item)
        masks[i] = item.cloth_mask
        if y is not None:
            y[i] = item.target.transpose(2, 0, 1)
        persons.append(item.person_name)
        cloths.append(item.cloth_name)
    return {"x": x, "y": y, "cloth_mask": masks, "person_names": persons, "cloth_names": cloths}
