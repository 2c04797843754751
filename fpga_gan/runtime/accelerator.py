"""The Accelerator facade, the artifact reader and the backend registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

SUPPORTED_SCHEMA = 1


class ArtifactError(Exception):
    """The artifact directory is missing, incomplete or inconsistent."""


class InputError(ValueError):
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
                   int(d["bits"]), bool(d["signed"]), tuple(rng) if rng else None)


class Backend(Protocol):
    def run(self, codes: np.ndarray) -> np.ndarray: ...
    def close(self) -> None: ...


BackendFactory = Callable[["Artifact"], Backend]
_BACKENDS: dict[str, BackendFactory] = {}
# Order in which backend="auto" tries them: real hardware first, the CPU fallback last.
_AUTO_ORDER = ["pynq", "cpu"]   # the sim backend is only ever chosen by name: it is slow


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
    input: TensorSpec
    output: TensorSpec

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
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ArtifactError(f"{meta_path} must hold a JSON object, not a {type(meta).__name__}")
        version = meta.get("schema_version")
        if version != SUPPORTED_SCHEMA:
            raise ArtifactError(f"{meta_path}: schema_version {version!r} is not supported "
                                f"(this runtime reads {SUPPORTED_SCHEMA}); re-export the model")
        try:
            return cls(path, meta, TensorSpec.from_json(meta["inputs"][0]),
                       TensorSpec.from_json(meta["outputs"][0]))
        except (KeyError, IndexError, TypeError) as exc:
            raise ArtifactError(f"{meta_path} lacks a field the runtime needs: {exc}") from exc
        except ValueError as exc:
            raise ArtifactError(f"{meta_path}: {exc}") from exc

    def file(self, key: str) -> Path:
        name = self.meta.get("files", {}).get(key)
        if name is None:
            raise ArtifactError(f"{self.path / 'model.json'} names no '{key}' file")
        f = self.path / name
        if not f.is_file():
            raise ArtifactError(f"artifact file missing: {f}")
        return f


class Accelerator:
    """One generator on one backend. Inputs and outputs are integer codes, as the hardware sees them.

    Use ``quantize_input`` / ``dequantize_output`` to go between real values and codes; for images
    the codes are simply the 8-bit pixels.
    """

    def __init__(self, artifact: Artifact, backend_name: str, backend: Backend) -> None:
        self.artifact, self.backend_name, self._backend = artifact, backend_name, backend

    @classmethod
    def open(cls, artifact_dir: str | Path, backend: str = "auto") -> "Accelerator":
        artifact = Artifact.load(artifact_dir)
        _load_builtin_backends()
        if backend == "auto":
            errors = []
            for name in _AUTO_ORDER:
                if name in _BACKENDS:
                    try:
                        return cls(artifact, name, _BACKENDS[name](artifact))
                    except Exception as exc:  # noqa: BLE001 - try the next one, report all
                        errors.append(f"{name}: {exc}")
            raise ArtifactError("no backend could open " f"{artifact.path}: " + "; ".join(errors))
        if backend not in _BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: {', '.join(available_backends())}")
        return cls(artifact, backend, _BACKENDS[backend](artifact))

    @property
    def input_spec(self) -> TensorSpec:
        return self.artifact.input

    @property
    def output_spec(self) -> TensorSpec:
        return self.artifact.output

    @property
    def input_dtype(self) -> np.dtype:
        return self.artifact.input.dtype

    def quantize_input(self, values: np.ndarray) -> np.ndarray:
        """Real values to input codes (round half to even, saturate), as the input quantizer does."""
        spec = self.input_spec
        lo, hi = spec.value_range
        codes = np.clip(np.round(np.asarray(values, dtype=np.float64) / spec.scale), lo, hi)
        return codes.astype(spec.dtype)

    def dequantize_output(self, codes: np.ndarray) -> np.ndarray:
        return codes.astype(np.float32) * np.float32(self.output_spec.scale)

    def validate(self, batch: np.ndarray) -> np.ndarray:
        """Check a batch of input codes and return it as a contiguous array of the input dtype."""
        spec = self.input_spec
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

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Input codes (N, ...) of the input dtype in, output codes (N, ...) of the output dtype out."""
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


def _load_builtin_backends() -> None:
    # Registration is cheap; importing the heavy libraries happens when a backend is opened.
    from . import board, cpu, sim  # noqa: F401
