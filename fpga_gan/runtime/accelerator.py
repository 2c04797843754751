"""The Accelerator facade, the artifact reader and the backend registry."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Union

import numpy as np

from .._files import UnsafePathError, inside
from ..errors import UserError

SUPPORTED_SCHEMA = 1


class ArtifactError(UserError):
    """The artifact directory is missing, incomplete or inconsistent."""


class IntegrityError(ArtifactError):
    """An artifact file does not match its manifest (sha256), or the artifact belongs to another
    board or model. Never a reason to try another backend: the files themselves are in doubt."""


class InputError(UserError, ValueError):
    """A batch handed to ``run`` has the wrong shape, type or values."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float
    bits: int
    signed: bool
    value_range: tuple[int, int] | None
    # value = (code - zero_point) * scale: non-zero when the model shifts its input by whole
    # quantizer steps before quantizing it (absorbed pre-processing)
    zero_point: int = 0

    @classmethod
    def from_json(cls, d: dict) -> "TensorSpec":
        rng = d.get("range")
        try:
            scale = float(d["scale"])
        except (TypeError, ValueError):
            scale = float("nan")
        if not (np.isfinite(scale) and scale > 0):   # 0 or NaN would turn every code into garbage
            raise ValueError(f"tensor {d['name']!r}: scale {d['scale']!r} is not a finite positive number")
        return cls(d["name"], tuple(d["shape"]), np.dtype(d["dtype"]), scale,
                   int(d["bits"]), bool(d["signed"]), tuple(rng) if rng else None, int(d.get("zero_point", 0)))


# What ``run`` takes: one array for a single-input generator; for several inputs (an image and a
# condition vector) a sequence in model.json's input order or a dict by input name.
Inputs = Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]


class Backend(Protocol):
    # one array for a single-input artifact, a tuple (model.json's input order) for several
    def run(self, codes: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray: ...
    def close(self) -> None: ...


BackendFactory = Callable[["Artifact"], Backend]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available to ``Accelerator.open`` (the sim and pynq backends plug in here)."""
    _BACKENDS[name] = factory


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


@dataclass
class Artifact:
    """A directory holding ``model.json`` and the files it names."""

    path: Path
    meta: dict
    input: TensorSpec             # the first input (the only one of most generators)
    output: TensorSpec
    inputs: list[TensorSpec] = field(default_factory=list)   # every input, model.json's order

    def __post_init__(self) -> None:
        if not self.inputs:
            self.inputs = [self.input]

    @classmethod
    def load(cls, path: str | Path) -> "Artifact":
        path = Path(path)
        if not path.is_dir():
            raise ArtifactError(f"artifact directory not found: {path}")
        meta_path = path / "model.json"
        if not meta_path.is_file():
            raise ArtifactError(f"{path} is not an fpga_gan artifact: it has no model.json "
                                "(create one with `fpga-gan export MODEL -o DIR`)")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ArtifactError(f"{meta_path} must hold a JSON object, got {type(meta).__name__}")
        version = meta.get("schema_version")
        if version != SUPPORTED_SCHEMA:
            raise ArtifactError(f"{meta_path}: schema_version {version!r} is not supported "
                                f"(this runtime reads {SUPPORTED_SCHEMA}); re-export the model")
        try:
            inputs = [TensorSpec.from_json(d) for d in meta["inputs"]]
            return cls(path, meta, inputs[0], TensorSpec.from_json(meta["outputs"][0]), inputs)
        except (KeyError, IndexError, TypeError) as exc:
            raise ArtifactError(f"{meta_path} lacks a field the runtime needs: {exc}") from exc
        except ValueError as exc:
            raise ArtifactError(f"{meta_path} has a tensor entry the runtime cannot read: {exc}") from exc

    def file(self, key: str) -> Path:
        """The file ``model.json`` names for ``key``; the name must stay inside the artifact."""
        files = self.meta.get("files", {})
        name = files.get(key) if isinstance(files, dict) else None
        if name is None:
            raise ArtifactError(f"{self.path / 'model.json'} names no '{key}' file")
        try:
            f = inside(self.path, name, f"{self.path / 'model.json'}: files.{key}")
        except UnsafePathError as exc:
            raise ArtifactError(str(exc)) from None
        if not f.is_file():
            raise ArtifactError(f"artifact file missing: {f}")
        return f

    def verify_manifest(self):
        """When the artifact has a ``manifest.json``: validate it and check the sha256 of every
        file it lists (raises :class:`IntegrityError`); returns the Manifest, or None without one.

        Every backend runs files of the artifact, so the check is made for all of them: a graph
        altered after the build must not run on the cpu backend either.
        """
        from .manifest import MANIFEST_NAME, Manifest

        if not (self.path / MANIFEST_NAME).exists() and not (self.path / MANIFEST_NAME).is_symlink():
            return None
        manifest = Manifest.load(self.path)
        manifest.verify_files()
        return manifest


class Accelerator:
    """One generator on one backend. Inputs and outputs are integer codes, as the hardware sees them.

    Use ``quantize_input`` / ``dequantize_output`` to go between real values and codes; for images
    the codes are simply the 8-bit pixels.
    """

    def __init__(self, artifact: Artifact, backend_name: str, backend: Backend) -> None:
        self.artifact, self.backend_name, self._backend = artifact, backend_name, backend

    @classmethod
    def open(cls, artifact_dir: str | Path, backend: str = "auto") -> "Accelerator":
        """Open an artifact on a backend.

        ``auto`` takes the pynq backend on a board and the cpu backend where there is none (no
        ``BOARD`` set, pynq not installed, or a CPU-only package). It never falls back after an
        integrity failure, nor after a board backend fails on a board: that would silently run
        other files than the ones the user built. With a ``manifest.json`` every backend checks
        the hashes it lists before running anything.
        """
        artifact = Artifact.load(artifact_dir)
        _load_builtin_backends()
        if backend == "auto":
            backend = _auto_backend(artifact)
        elif backend not in _BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: {', '.join(available_backends())}")
        if backend != "pynq":           # the pynq backend checks the manifest itself, before the fabric
            artifact.verify_manifest()
        return cls(artifact, backend, _BACKENDS[backend](artifact))

    @property
    def input_spec(self) -> TensorSpec:
        """The first input's spec (the only one of a single-input generator)."""
        return self.artifact.input

    @property
    def input_specs(self) -> list[TensorSpec]:
        """Every input's spec, in the order ``run`` takes a sequence of inputs."""
        return self.artifact.inputs

    @property
    def output_spec(self) -> TensorSpec:
        return self.artifact.output

    @property
    def input_dtype(self) -> np.dtype:
        return self.artifact.input.dtype

    def quantize_input(self, values, name: str | None = None):
        """Real values to input codes (round half to even, saturate), as the input quantizer does.

        One array: the input ``name`` (default: the only input). For a multi-input generator, a
        sequence or dict of arrays gives the same structure of codes, input by input.
        """
        if isinstance(values, Mapping):
            return {key: self.quantize_input(v, key) for key, v in values.items()}
        if isinstance(values, (list, tuple)):
            if len(values) != len(self.input_specs):
                raise InputError(f"{len(values)} arrays of values for the inputs {self._input_names()}")
            return tuple(self._quantize(spec, v) for spec, v in zip(self.input_specs, values))
        if name is None and len(self.input_specs) > 1:
            raise InputError(f"this generator has {len(self.input_specs)} inputs ({self._input_names()}); pass "
                             "a tuple or dict of arrays, or name= the input these values are for")
        return self._quantize(self._spec(name), values)

    def _spec(self, name: str | None) -> TensorSpec:
        if name is None:
            return self.input_spec
        for spec in self.input_specs:
            if spec.name == name:
                return spec
        raise InputError(f"no input named {name!r}; the inputs are {self._input_names()}")

    def _input_names(self) -> str:
        return ", ".join(repr(s.name) for s in self.input_specs)

    @staticmethod
    def _quantize(spec: TensorSpec, values) -> np.ndarray:
        lo, hi = spec.value_range
        codes = np.round(np.asarray(values, dtype=np.float64) / spec.scale)
        if spec.zero_point:
            codes = codes + spec.zero_point
        return np.clip(codes, lo, hi).astype(spec.dtype)

    def dequantize_output(self, codes: np.ndarray) -> np.ndarray:
        return codes.astype(np.float32) * np.float32(self.output_spec.scale)

    def validate(self, batch: Inputs):
        """Check a batch of input codes and return it as a contiguous array of the input dtype
        (a tuple of them, in model.json's input order, for a multi-input generator)."""
        specs = self.input_specs
        if len(specs) == 1:
            if isinstance(batch, Mapping):
                if set(batch) != {specs[0].name}:
                    raise InputError(f"inputs by name must be exactly {self._input_names()}, got {sorted(batch)}")
                batch = batch[specs[0].name]
            if isinstance(batch, (list, tuple)) and len(batch) == 1 and not np.isscalar(batch[0]) \
                    and np.ndim(batch[0]) == len(specs[0].shape):
                batch = batch[0]
            return self._validate_one(specs[0], batch)
        if isinstance(batch, Mapping):
            unknown = sorted(set(batch) - {s.name for s in specs})
            missing = [s.name for s in specs if s.name not in batch]
            if unknown or missing:
                raise InputError(f"inputs by name must be exactly {self._input_names()}; "
                                 + (f"missing {missing}" if missing else f"unknown {unknown}"))
            batch = [batch[s.name] for s in specs]
        elif not isinstance(batch, (list, tuple)):
            raise InputError(f"this generator has {len(specs)} inputs ({self._input_names()}): pass a tuple of "
                             "arrays in that order, or a dict by name")
        if len(batch) != len(specs):
            raise InputError(f"{len(batch)} input arrays for a generator with {len(specs)} inputs "
                             f"({self._input_names()})")
        arrays = tuple(self._validate_one(spec, b) for spec, b in zip(specs, batch))
        sizes = {a.shape[0] for a in arrays}
        if len(sizes) != 1:
            raise InputError("the inputs must hold the same number of samples, got "
                             + ", ".join(f"{s.name!r} {a.shape[0]}" for s, a in zip(specs, arrays)))
        return arrays

    @staticmethod
    def _validate_one(spec: TensorSpec, batch) -> np.ndarray:
        arr = np.asarray(batch)
        expected = spec.shape[1:]
        if arr.ndim == len(expected):
            arr = arr[None]
        if arr.ndim != len(spec.shape) or tuple(arr.shape[1:]) != tuple(expected):
            raise InputError(f"input '{spec.name}' must have shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(np.asarray(batch).shape)}")
        if arr.dtype.kind == "f":
            if np.isnan(arr).any():
                raise InputError(f"input '{spec.name}' contains NaN")
            if not np.array_equal(arr, np.round(arr)):
                raise InputError(f"input '{spec.name}' must hold integer codes (scale {spec.scale}); "
                                 "use quantize_input() to convert real values")
        elif arr.dtype.kind not in "iub":
            raise InputError(f"input '{spec.name}' has dtype {arr.dtype}; expected {spec.dtype}")
        if spec.value_range is not None and arr.size:
            lo, hi = spec.value_range
            amin, amax = arr.min(), arr.max()
            if amin < lo or amax > hi:
                raise InputError(f"input '{spec.name}' codes must lie in [{lo}, {hi}] "
                                 f"({spec.dtype}), got [{amin}, {amax}]")
        return np.ascontiguousarray(arr.astype(spec.dtype, copy=False))

    def run(self, batch: Inputs) -> np.ndarray:
        """Input codes (N, ...) of the input dtype in, output codes (N, ...) of the output dtype out.

        A multi-input generator takes a tuple of arrays (model.json's input order) or a dict by
        input name, with the same N in each."""
        codes = self.validate(batch)
        out = self._backend.run(codes)
        return out.astype(self.output_spec.dtype)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Accelerator({self.artifact.meta.get('model')!r}, backend={self.backend_name!r})"


def _auto_backend(artifact: Artifact) -> str:
    """pynq when this is a board and the artifact has a bitstream, else cpu (see ``open``)."""
    import importlib.util
    import sys

    from .manifest import MANIFEST_NAME, Manifest, running_board

    if "pynq" not in _BACKENDS or not (artifact.path / MANIFEST_NAME).is_file():
        return "cpu"
    manifest = Manifest.load(artifact.path)      # a malformed manifest stops here, with its reason
    if manifest.bitstream is None or running_board() is None:
        return "cpu"                             # a CPU-only package, or no board here
    loaded = sys.modules.get("pynq", False)       # None: imports are blocked; a module: already imported
    if loaded is False:
        try:
            loaded = importlib.util.find_spec("pynq")
        except (ImportError, ValueError):
            loaded = None
    return "cpu" if loaded is None else "pynq"


def _load_builtin_backends() -> None:
    # Registration is cheap; importing the heavy libraries happens when a backend is opened.
    from . import board, cpu, sim  # noqa: F401
