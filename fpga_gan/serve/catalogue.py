"""The people and garments the page offers: the test split of a VITON-HD style data set.

By default the server renders a small synthetic test split of its own (seeds the shipped weights
never trained on) into a temporary directory it removes on exit; ``--data DIR`` serves an existing
data set instead, read only. Names from a request are looked up in the split's listing, never
joined onto a path, so no request reaches outside the data set.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ..data.viton import TryOnDataset, TryOnItem, read_pairs

__all__ = ["CATALOGUE_SEED", "Catalogue", "CatalogueError"]

CATALOGUE_SEED = 2026     # the demo's data set seed: unseen by every shipped model


class CatalogueError(LookupError):
    """A person or garment id the catalogue does not hold."""


class Catalogue:
    """The ``split`` of the data set at ``root``: its people and in-shop garments by name."""

    def __init__(self, root: str | Path, split: str = "test") -> None:
        self.root, self.split = Path(root), split
        pairs = read_pairs(self.root / f"{split}_pairs.txt")
        self.persons = sorted({p for p, _ in pairs})
        self.garments = sorted({c for _, c in pairs})
        self._temp: tempfile.TemporaryDirectory | None = None

    @classmethod
    def synthetic(cls, people: int = 12, seed: int = CATALOGUE_SEED) -> "Catalogue":
        """A fresh synthetic test split of ``people`` people and as many garments, in a temporary
        directory that :meth:`close` removes."""
        from ..data.synth import make_dataset

        temp = tempfile.TemporaryDirectory(prefix="fpga-gan-catalogue-")
        root = make_dataset(Path(temp.name) / "data", n=2 * people, seed=seed, test_fraction=0.5,
                            progress=False)
        catalogue = cls(root)
        catalogue._temp = temp
        return catalogue

    def close(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def _check(self, kind: str, name: object) -> str:
        names = self.persons if kind == "person" else self.garments
        if not isinstance(name, str) or name not in names:
            raise CatalogueError(f"no {kind} {name!r} in the catalogue (it has {len(names)}: "
                                 f"{', '.join(names[:3])}, ...)")
        return name

    def image_path(self, kind: str, name: object) -> Path:
        """The file of a catalogue person (``kind="person"``) or garment, by its listed name."""
        if kind not in ("person", "garment"):
            raise CatalogueError(f"unknown catalogue kind {kind!r}: person or garment")
        name = self._check(kind, name)
        return self.root / self.split / ("image" if kind == "person" else "cloth") / name

    def item(self, person: str, garment: str | None, size: tuple[int, int],
             garment_image: np.ndarray | None = None) -> TryOnItem:
        """The try-on input of a catalogue person wearing a catalogue garment, or an uploaded one
        (``garment_image``, uint8 at ``size``; its mask is its non-white pixels)."""
        from .images import garment_mask

        person = self._check("person", person)
        if garment_image is None:
            garment = self._check("garment", garment)
            return TryOnDataset(self.root, self.split, size=size, pairs=[(person, garment)])[0]
        item = TryOnDataset(self.root, self.split, size=size, pairs=[(person, person)])[0]
        return dataclasses.replace(item, cloth_name="upload", cloth=garment_image,
                                   cloth_mask=garment_mask(garment_image), target=None)

    def garment(self, name: str, size: tuple[int, int]) -> np.ndarray:
        """A catalogue garment as uint8 (H, W, 3) at ``size``."""
        from ..app import load_garment_image

        return load_garment_image(self.image_path("garment", name), size)
