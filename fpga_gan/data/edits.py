"""Garment edits with exact ground truth: one garment rendered before and after an attribute change.

Why this exists: the design editor must learn "this garment, but in red / with checks / as a coat",
and judging it needs the garment that edit really gives. The synthetic world renders garments from
parameters, so an edit is a change of parameters and its target is one more render.

An **edit** is a dict of attribute -> value, the same keys the CLI takes as ``--set key=value``:

============  ==========================================================================
``colour``    main colour, ``(r, g, b)`` (or ``#rrggbb`` on the command line)
``colour2``   second colour of the pattern (stripes, checks, dots, gradient end, logo)
``pattern``   one of :data:`PATTERNS`; ``period`` (garment units, 0.34-0.5) goes with it
``kind``      one of :data:`GARMENT_KINDS`
``sleeve``    ``none``, ``short``, ``three_quarter`` or ``long``
``neckline``  ``round``, ``v`` or ``collar``
``length``    body length in torso lengths
``fit``       width of the body below the shoulders
============  ==========================================================================

:func:`apply_edit` defines what an edit means where the world couples attributes, so every edit
has one right answer:

* a new **pattern** is laid at a canonical placement (phase 0, duty 0.45, a circle logo of size
  0.17): the source's placement may be invisible (a solid garment has none);
* a **kind** keeps the sleeve and neckline where the new kind has them and otherwise takes the
  nearest one it has; length and hem keep their relative place in the new kind's range;
* a **sleeve** on a tee, long-sleeve or tank changes the kind too (these three differ only in
  their sleeves); shirts, dresses and coats keep only the sleeves they come with.

The condition the editor sees (:func:`condition_codes`) is a fixed vector of uint8 codes, one per
constant input plane: a "set" flag and the value for each attribute, zero for "keep".
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._files import publish_dir
from ..errors import UserError
from .synth import (GARMENT_KINDS, PATTERNS, SLEEVES, NECKLINES, _KIND_SHAPE, GarmentParams, _check_size,
                    _garment_colours, _prepare_target, _render_shop, _save_png, sample_garment_params, sample_seed)

__all__ = [
    "EDIT_ATTRIBUTES", "EDIT_TYPES", "CONDITION_CHANNELS", "CONDITION_LAYOUT", "EditError", "EDIT_DATASET_VERSION",
    "apply_edit", "condition_codes", "parse_edit", "edit_to_json", "edit_from_json", "random_edit",
    "render_params", "make_edit_dataset", "load_edit_arrays", "edit_type", "PERIOD_RANGE", "LENGTH_RANGE",
    "FIT_RANGE", "EditDatasetError", "editor_input", "allowed_sleeves", "edit_examples", "edit_steps",
    "edit_choices",
]

EDIT_DATASET_VERSION = "1.0.0"
EDIT_ATTRIBUTES = ("colour", "colour2", "pattern", "period", "kind", "sleeve", "neckline", "length", "fit")
#: Edit types of the data set and of the per-type reports: (name, group).
EDIT_TYPES = (("colour", "colour"), ("colour2", "colour"), ("pattern", "texture"), ("kind", "shape"),
              ("sleeve", "shape"), ("neckline", "shape"), ("length", "shape"), ("fit", "shape"))
_EDIT_TYPE_WEIGHTS = (0.15, 0.12, 0.28, 0.13, 0.1, 0.07, 0.08, 0.07)

# Value ranges that a code 0..255 spans (the condition planes) and that edits are drawn from.
PERIOD_RANGE = (0.34, 0.5)
LENGTH_RANGE = (0.85, 1.7)
FIT_RANGE = (0.9, 1.22)
_CANONICAL_TEXTURE = {"phase": 0.0, "duty": 0.45, "logo_shape": "circle", "logo_size": 0.17}
_SLEEVE_ORDER = ("none", "short", "three_quarter", "long")
_TOP_BY_SLEEVE = {"none": "tank", "short": "tee", "long": "longsleeve"}

# Condition planes, in order: (attribute, number of planes). Categorical attributes are one-hot
# (255 on the chosen value's plane); colours and scalars are a set flag plus their codes.
CONDITION_LAYOUT = (("colour", 4), ("colour2", 4), ("pattern", len(PATTERNS)), ("period", 1),
                    ("kind", len(GARMENT_KINDS)), ("sleeve", len(SLEEVES)), ("neckline", len(NECKLINES)),
                    ("length", 2), ("fit", 2))
CONDITION_CHANNELS = sum(n for _, n in CONDITION_LAYOUT)


class EditError(UserError, ValueError):
    """An edit that names an unknown attribute or value, or one the garment cannot take."""


# ----------------------------------------------------------------------------------------------
# Parsing and JSON

def _parse_colour(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    if m:
        h = m.group(1)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 3 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return int(parts[0]), int(parts[1]), int(parts[2])
    raise EditError(f"colour {text!r}: give #rrggbb (e.g. #aa3300) or r,g,b with values 0-255")


def _parse_float(key: str, text: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EditError(f"{key}={text!r}: not a number") from None
    if not lo <= value <= hi:
        raise EditError(f"{key}={value:g} is outside the range the editor knows, {lo:g} to {hi:g}")
    return value


_CHOICES = {"pattern": PATTERNS, "kind": GARMENT_KINDS, "sleeve": SLEEVES, "neckline": NECKLINES}
_ALIASES = {"color": "colour", "color2": "colour2", "texture": "pattern", "neck": "neckline"}


def edit_choices() -> dict[str, list[str]]:
    """The allowed values of each categorical edit attribute (for menus and error messages)."""
    return {key: list(values) for key, values in _CHOICES.items()}


def parse_edit(settings: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["colour=#aa3300", "sleeve=short"]`` -> an edit dict; a clear error for anything else."""
    edit: dict[str, Any] = {}
    for item in settings:
        if "=" not in item:
            raise EditError(f"--set {item!r}: expected key=value, e.g. colour=#aa3300 or sleeve=short")
        key, value = (s.strip() for s in item.split("=", 1))
        key = _ALIASES.get(key.lower(), key.lower())
        if key not in EDIT_ATTRIBUTES:
            raise EditError(f"--set {item!r}: unknown attribute {key!r}; known: {', '.join(EDIT_ATTRIBUTES)}")
        if key in edit:
            raise EditError(f"--set {key} given twice")
        edit[key] = value
    return _normalise(edit)


def _normalise(edit: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in edit.items():
        if key not in EDIT_ATTRIBUTES:
            raise EditError(f"unknown edit attribute {key!r}; known: {', '.join(EDIT_ATTRIBUTES)}")
        if key in ("colour", "colour2"):
            if isinstance(value, str):
                value = _parse_colour(value)
            rgb = tuple(int(v) for v in value)
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise EditError(f"{key} {value!r}: need three values 0-255")
            out[key] = rgb
        elif key in _CHOICES:
            value = str(value)
            if value not in _CHOICES[key]:
                raise EditError(f"{key}={value!r}: choose one of {', '.join(_CHOICES[key])}")
            out[key] = value
        else:
            lo, hi = {"period": PERIOD_RANGE, "length": LENGTH_RANGE, "fit": FIT_RANGE}[key]
            out[key] = _parse_float(key, str(value), lo, hi)
    if "period" in out and "pattern" not in out:
        raise EditError("period goes with a pattern: add pattern=hstripes (or vstripes, checks, dots)")
    return out


def edit_to_json(edit: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("#%02x%02x%02x" % tuple(v) if k in ("colour", "colour2") else v) for k, v in edit.items()}


def edit_from_json(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise EditError(f"an edit must be a JSON object of attribute -> value, got {type(data).__name__}")
    return _normalise(data)


def edit_type(edit: Mapping[str, Any]) -> str:
    """The edit type a data-set edit belongs to: "pattern" for a new texture (which names its
    period and, on a solid garment, its second colour too), else its one attribute."""
    if "pattern" in edit:
        return "pattern"
    for name, _ in EDIT_TYPES:
        if name in edit:
            return name
    raise EditError("empty edit")


# ----------------------------------------------------------------------------------------------
# Semantics

def _nearest_sleeve(sleeve: str, allowed: tuple[str, ...]) -> str:
    rank = _SLEEVE_ORDER.index(sleeve)
    return min(allowed, key=lambda s: (abs(_SLEEVE_ORDER.index(s) - rank), _SLEEVE_ORDER.index(s)))


def _relative(value: float, lo: float, hi: float) -> float:
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def allowed_sleeves(kind: str) -> tuple[str, ...]:
    """Sleeves a garment of ``kind`` can be edited to (a top changes kind with its sleeves)."""
    if kind in _TOP_BY_SLEEVE.values():
        return tuple(_TOP_BY_SLEEVE)
    return _KIND_SHAPE[kind][0]


def apply_edit(g: GarmentParams, edit: Mapping[str, Any]) -> GarmentParams:
    """The garment ``g`` after ``edit`` (see the module docstring for the coupled attributes)."""
    edit = _normalise(edit)
    if "kind" in edit and edit["kind"] != g.kind:
        kind = edit["kind"]
        sleeves, necks, (l_lo, l_hi), (h_lo, h_hi) = _KIND_SHAPE[kind]
        old_sleeves, _, (ol_lo, ol_hi), (oh_lo, oh_hi) = _KIND_SHAPE[g.kind]
        g = replace(g, kind=kind,
                    sleeve=g.sleeve if g.sleeve in sleeves else _nearest_sleeve(g.sleeve, sleeves),
                    neckline=g.neckline if g.neckline in necks else necks[0],
                    length=l_lo + _relative(g.length, ol_lo, ol_hi) * (l_hi - l_lo),
                    hem=h_lo + _relative(g.hem, oh_lo, oh_hi) * (h_hi - h_lo))
    if "sleeve" in edit and edit["sleeve"] != g.sleeve:
        sleeve = edit["sleeve"]
        if sleeve not in allowed_sleeves(g.kind):
            raise EditError(f"a {g.kind} cannot have sleeve={sleeve}; it takes {', '.join(allowed_sleeves(g.kind))}"
                            " (or change kind first)")
        g = replace(g, sleeve=sleeve, kind=_TOP_BY_SLEEVE[sleeve] if g.kind in _TOP_BY_SLEEVE.values() else g.kind)
    if "neckline" in edit and edit["neckline"] != g.neckline:
        if edit["neckline"] not in _KIND_SHAPE[g.kind][1]:
            raise EditError(f"a {g.kind} cannot have neckline={edit['neckline']}; it takes "
                            f"{', '.join(_KIND_SHAPE[g.kind][1])}")
        g = replace(g, neckline=edit["neckline"])
    if "pattern" in edit:
        g = replace(g, pattern=edit["pattern"], period=float(edit.get("period", g.period)), **_CANONICAL_TEXTURE)
    for key in ("colour", "colour2", "length", "fit"):
        if key in edit:
            g = replace(g, **{key: edit[key]})
    return g


# The order in which a several-attribute edit is applied, one trained edit type at a time: shape
# first (a sleeve after the kind it belongs to), then the texture, then the colours it shows.
_STEP_ORDER = (("kind",), ("sleeve",), ("neckline",), ("length",), ("fit",), ("pattern", "period", "colour2"),
               ("colour",), ("colour2",))


def edit_steps(edit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An edit as the single-attribute edits the editor was trained on, in the order to apply them.

    The editor learnt one edit type per pass (a new pattern with its period and second colour is one
    type); ``--set colour=... --set sleeve=short`` runs it twice, the sleeve first. A combination
    that no garment can have (``kind=coat`` with ``sleeve=none``) is an :class:`EditError`.
    """
    edit = _normalise(edit)
    kind = edit.get("kind")
    if kind and "sleeve" in edit and edit["sleeve"] not in allowed_sleeves(kind):
        raise EditError(f"a {kind} cannot have sleeve={edit['sleeve']}; it takes {', '.join(allowed_sleeves(kind))}")
    if kind and "neckline" in edit and edit["neckline"] not in _KIND_SHAPE[kind][1]:
        raise EditError(f"a {kind} cannot have neckline={edit['neckline']}; it takes "
                        f"{', '.join(_KIND_SHAPE[kind][1])}")
    steps, done = [], set()
    for keys in _STEP_ORDER:
        if keys[0] in edit and keys[0] not in done:
            step = {k: edit[k] for k in keys if k in edit and k not in done}
            done |= set(step)
            steps.append(step)
    return steps


def condition_codes(edit: Mapping[str, Any]) -> np.ndarray:
    """The edit as uint8 codes, one per constant condition plane (:data:`CONDITION_LAYOUT`)."""
    edit = _normalise(edit)
    codes: list[int] = []
    for key, n in CONDITION_LAYOUT:
        value = edit.get(key)
        if key in ("colour", "colour2"):
            codes += [0, 0, 0, 0] if value is None else [255, *value]
        elif key in _CHOICES:
            codes += [255 if value == choice else 0 for choice in _CHOICES[key]]
        elif key == "period":
            codes += [0 if value is None else _scalar_code(value, PERIOD_RANGE)]
        else:
            rng = LENGTH_RANGE if key == "length" else FIT_RANGE
            codes += [0, 0] if value is None else [255, _scalar_code(value, rng)]
    assert len(codes) == CONDITION_CHANNELS
    return np.asarray(codes, np.uint8)


def _scalar_code(value: float, rng: tuple[float, float]) -> int:
    # 1..255 so that "set" is never the all-zero "keep" code
    return int(round(1 + 254 * _relative(value, *rng)))


def render_params(g: GarmentParams, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """The in-shop image (uint8 HxWx3) of garment parameters, as :func:`render_garment` draws them."""
    return _render_shop(g, _check_size(size))[0]


# ----------------------------------------------------------------------------------------------
# Random edits for the data set

def _random_rgb(rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Any RGB, but not one the garment would vanish in (the near-white shop background) or one a
    pattern would vanish in (its other colour)."""
    while True:
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        if min(c) > 215:
            continue
        if all(np.linalg.norm(np.subtract(c, a)) >= 80 for a in avoid):
            return c


def random_edit(g: GarmentParams, rng: np.random.Generator) -> dict[str, Any]:
    """One single-attribute edit that changes ``g`` visibly (colour2 only where a pattern shows it)."""
    while True:
        name = EDIT_TYPES[rng.choice(len(EDIT_TYPES), p=_EDIT_TYPE_WEIGHTS)][0]
        if name == "colour":
            return {"colour": _random_rgb(rng, [g.colour2] if g.pattern != "solid" else [])}
        if name == "colour2" and g.pattern != "solid":
            return {"colour2": _random_rgb(rng, [g.colour, g.colour2])}
        if name == "pattern":
            pattern = str(rng.choice([p for p in PATTERNS if p != g.pattern]))
            edit: dict[str, Any] = {"pattern": pattern}
            if pattern in ("hstripes", "vstripes", "checks", "dots"):
                edit["period"] = float(rng.uniform(*PERIOD_RANGE))
            if g.pattern == "solid" and pattern != "solid":
                # the source's second colour is invisible, so the edit must name one
                edit["colour2"] = _garment_colours(rng)[1]
                if np.linalg.norm(np.subtract(edit["colour2"], g.colour)) < 80:
                    continue
            return edit
        if name == "kind":
            return {"kind": str(rng.choice([k for k in GARMENT_KINDS if k != g.kind]))}
        if name == "sleeve":
            options = [s for s in allowed_sleeves(g.kind) if s != g.sleeve]
            if options:
                return {"sleeve": str(rng.choice(options))}
        if name == "neckline":
            options = [n for n in _KIND_SHAPE[g.kind][1] if n != g.neckline]
            if options:
                return {"neckline": str(rng.choice(options))}
        if name == "length":
            _, _, (lo, hi), _ = _KIND_SHAPE[g.kind]
            lo, hi = max(LENGTH_RANGE[0], lo - 0.12), min(LENGTH_RANGE[1], hi + 0.12)
            value = float(rng.uniform(lo, hi))
            if abs(value - g.length) >= 0.08:
                return {"length": value}
        if name == "fit":
            value = float(rng.uniform(*FIT_RANGE))
            if abs(value - g.fit) >= 0.06:
                return {"fit": value}


# ----------------------------------------------------------------------------------------------
# Data set writer and loader

@dataclass(frozen=True)
class _EditRecord:
    index: int
    garment_seed: int
    edit: dict[str, Any]
    source: GarmentParams
    target: GarmentParams


def _record(dataset_seed: int, index: int) -> _EditRecord:
    seed = sample_seed(dataset_seed, index)
    g = sample_garment_params(seed)
    edit = random_edit(g, np.random.default_rng([seed, 0xED17]))
    return _EditRecord(index, seed, edit, g, apply_edit(g, edit))


def edit_examples(seed: int, per_type: int = 1) -> list[tuple[str, GarmentParams, dict[str, Any], GarmentParams]]:
    """``per_type`` (type, source, edit, target) of every edit type, from data set seed ``seed``:
    the demo's edit grid, drawn exactly as ``make_edit_dataset`` draws its samples."""
    found: dict[str, list] = {name: [] for name, _ in EDIT_TYPES}
    index = 0
    while any(len(v) < per_type for v in found.values()):
        rec = _record(seed, index)
        kind = edit_type(rec.edit)
        if len(found[kind]) < per_type:
            found[kind].append((kind, rec.source, rec.edit, rec.target))
        index += 1
    return [example for name, _ in EDIT_TYPES for example in found[name]]


def _params_json(g: GarmentParams) -> dict[str, Any]:
    d = asdict(g)
    for key in ("colour", "colour2"):
        d[key] = list(d[key])
    return d


def make_edit_dataset(out_dir: str | os.PathLike, n: int, seed: int = 0, size: tuple[int, int] = (64, 64),
                      test_fraction: float = 0.1, progress: bool = True, overwrite: bool = False) -> Path:
    """Write ``n`` (source, edit, target) triples to ``out_dir``; see README "Edit data" for the layout.

    The last ``round(n * test_fraction)`` samples form ``test/``. Every sample draws its own garment
    seed, so test garments are garments the training split never shows. Written atomically (a
    hidden sibling renamed into place); ``overwrite`` replaces only an edit data set we wrote.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    size = _check_size(size)
    if n < 2:
        raise ValueError(f"n must be at least 2 (one train and one test sample), got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    _prepare_target(out_dir, overwrite)
    n_test = min(max(1, int(round(n * test_fraction))), n - 1)
    splits = {"train": range(n - n_test), "test": range(n - n_test, n)}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        bar = tqdm(total=n, disable=not progress, unit="pair", desc="rendering edits")
        for split, indices in splits.items():
            for sub in ("source", "target"):
                (partial / split / sub).mkdir(parents=True)
            lines = []
            for k in indices:
                rec = _record(seed, k)
                stem = f"{k:06d}"
                _save_png(render_params(rec.source, size), partial / split / "source" / f"{stem}.png")
                _save_png(render_params(rec.target, size), partial / split / "target" / f"{stem}.png")
                lines.append(json.dumps({"id": stem, "garment_seed": rec.garment_seed, "type": edit_type(rec.edit),
                                         "edit": edit_to_json(rec.edit), "source": _params_json(rec.source),
                                         "target": _params_json(rec.target)}))
                bar.update()
            (partial / split / "edits.jsonl").write_text("\n".join(lines) + "\n")
        bar.close()
        meta = {"generator": "fpga_gan.data.edits", "version": EDIT_DATASET_VERSION, "seed": int(seed), "n": int(n),
                "size": list(size), "counts": {k: len(v) for k, v in splits.items()},
                "condition_layout": [list(item) for item in CONDITION_LAYOUT]}
        (partial / "edits.json").write_text(json.dumps(meta, indent=2) + "\n")
        publish_dir(partial, out_dir, "edit-dataset", "--overwrite")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


class EditDatasetError(UserError, ValueError):
    """An edit data set folder that is missing files or holds something else."""


_STEM = re.compile(r"[0-9]{6}")


def load_edit_arrays(root: str | os.PathLike, split: str, limit: int | None = None) -> dict[str, Any]:
    """One split as arrays: ``source`` and ``target`` uint8 NCHW, ``condition`` uint8 (N, C), and the
    JSON records (edit, type, source and target parameters)."""
    from PIL import Image

    root = Path(root)
    index = root / split / "edits.jsonl"
    if not index.is_file():
        raise EditDatasetError(f"{root} is not an edit data set: {index} is missing (write one with "
                               "fpga-gan data make-edits)")
    records = []
    for n, line in enumerate(index.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            stem = rec["id"]
            rec["edit"] = edit_from_json(rec["edit"])
        except (json.JSONDecodeError, KeyError, TypeError, EditError) as exc:
            raise EditDatasetError(f"{index}, line {n}: not an edit record ({type(exc).__name__}: {exc})") from None
        if not isinstance(stem, str) or not _STEM.fullmatch(stem):
            raise EditDatasetError(f"{index}, line {n}: id {stem!r} is not a six-digit sample name")
        records.append(rec)
        if limit and len(records) >= limit:
            break

    def read(sub: str, stem: str) -> np.ndarray:
        path = root / split / sub / f"{stem}.png"
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise EditDatasetError(f"cannot read {path}: {exc}") from None

    source = np.stack([read("source", r["id"]) for r in records]).transpose(0, 3, 1, 2).copy()
    target = np.stack([read("target", r["id"]) for r in records]).transpose(0, 3, 1, 2).copy()
    if source.shape != target.shape:
        raise EditDatasetError(f"{root}/{split}: source and target images differ in size")
    condition = np.stack([condition_codes(r["edit"]) for r in records])
    return {"source": source, "target": target, "condition": condition, "records": records}


def editor_input(source: np.ndarray, condition: np.ndarray) -> np.ndarray:
    """Stack garment images (N, 3, H, W) and condition codes (N, C) into the editor's one input
    tensor (N, 3 + C, H, W): the condition as constant planes, so the accelerator has one stream."""
    n, _, h, w = source.shape
    planes = np.broadcast_to(condition[:, :, None, None], (n, condition.shape[1], h, w))
    return np.concatenate([source, planes], axis=1).astype(np.uint8)
