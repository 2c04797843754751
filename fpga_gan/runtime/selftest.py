"""Self-test of an artifact on a backend: identical codes to the CPU reference, and how fast.

Run on the board after copying an artifact over (``python -m fpga_gan.runtime.selftest DIR``):
it pushes ``n`` random input frames, drawn from the input's whole code range, through the chosen
backend (the board by default) and through the cpu backend (ONNX Runtime on the same quantized
graph) and requires identical integer codes. The accelerator is bit-exact by construction, so a
single differing code means a broken bitstream, a packing mismatch or a wrong artifact - the
report names the first differing frame and position to start from. It then measures throughput
(images/s for the batch of ``n``) and batch-1 latency, medians of a few repeats.

Exit status: 0 identical, 1 mismatch, 2 the test could not run (message printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .accelerator import Accelerator, ArtifactError, InputError, TensorSpec
from .board import BoardError

__all__ = ["Mismatch", "SelftestResult", "main", "selftest"]

REFERENCE_BACKEND = "cpu"
DEFAULT_REPEATS = 5


@dataclass(frozen=True)
class Mismatch:
    """The first code where the backend and the CPU reference differ."""

    frame: int
    position: tuple[int, ...]     # index within the frame, NCHW without N: (c, h, w)
    got: int
    expected: int
    differing: int                # how many codes differ in the whole batch
    total: int

    def describe(self, backend: str) -> str:
        pos = ", ".join(f"{axis}={i}" for axis, i in zip("chw" if len(self.position) == 3 else
                                                          [f"d{k}" for k in range(len(self.position))],
                                                          self.position))
        return (f"frame {self.frame} differs first at ({pos}): {backend} gave {self.got}, "
                f"{REFERENCE_BACKEND} gave {self.expected} ({self.differing} of {self.total} codes differ)")


@dataclass
class SelftestResult:
    """What :func:`selftest` found. ``ok`` means identical codes on every frame."""

    artifact: Path
    backend: str
    n: int
    seed: int
    ok: bool
    mismatch: Mismatch | None
    shape_error: str | None               # set when the two backends return different shapes
    images_per_s: float                   # batch of n, median of `repeats`
    latency_ms: float                     # batch of 1, median of `repeats`
    repeats: int
    board: str | None = None              # the manifest's pynq_board, when the artifact has one

    def summary(self) -> str:
        """A short human report, a few lines."""
        where = f" ({self.board})" if self.board else ""
        lines = [(f"selftest {self.artifact}: backend {self.backend}{where} vs {REFERENCE_BACKEND}, "
                  f"{self.n} random input frames (seed {self.seed})")]
        if self.ok:
            lines.append(f"  codes: identical on all {self.n} frames")
        elif self.shape_error:
            lines.append(f"  MISMATCH: {self.shape_error}")
        else:
            lines.append(f"  MISMATCH: {self.mismatch.describe(self.backend)}")
        lines.append(f"  throughput: {self.images_per_s:.1f} images/s (batch {self.n}, median of {self.repeats})")
        lines.append(f"  latency: {self.latency_ms:.3f} ms (batch 1, median of {self.repeats})")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def _code_range(spec: TensorSpec) -> tuple[int, int]:
    if spec.value_range is not None:
        return int(spec.value_range[0]), int(spec.value_range[1])
    if spec.signed:
        return -(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1
    return 0, (1 << spec.bits) - 1


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _first_mismatch(got: np.ndarray, expected: np.ndarray) -> Mismatch | None:
    diff = got != expected
    if not diff.any():
        return None
    index = tuple(int(i) for i in np.argwhere(diff)[0])
    return Mismatch(index[0], index[1:], int(got[index]), int(expected[index]), int(diff.sum()), int(diff.size))


def selftest(artifact_dir: str | Path, n: int = 16, backend: str = "pynq", seed: int = 0,
             repeats: int = DEFAULT_REPEATS) -> SelftestResult:
    """Compare ``backend`` with the cpu reference on ``n`` random frames and time it.

    Raises ArtifactError / InputError / BoardError when a backend cannot open or run; a
    difference in the codes is not an exception but a result with ``ok=False``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    artifact_dir = Path(artifact_dir)
    with Accelerator.open(artifact_dir, backend=backend) as acc:
        rng = np.random.default_rng(seed)
        frames = []
        for spec in acc.input_specs:              # one array per input (an image and a condition vector)
            lo, hi = _code_range(spec)
            frames.append(rng.integers(lo, hi + 1, size=(n, *spec.shape[1:])).astype(spec.dtype))
        codes = frames[0] if len(frames) == 1 else tuple(frames)
        got = acc.run(codes)
        with Accelerator.open(artifact_dir, backend=REFERENCE_BACKEND) as ref:
            expected = ref.run(codes)
        mismatch, shape_error = None, None
        if got.shape != expected.shape:
            shape_error = f"{backend} returned shape {got.shape}, {REFERENCE_BACKEND} {expected.shape}"
        else:
            mismatch = _first_mismatch(got.astype(np.int64), expected.astype(np.int64))
        batch_s = _median_seconds(lambda: acc.run(codes), repeats)
        one = codes[:1] if len(frames) == 1 else tuple(f[:1] for f in frames)
        acc.run(one)   # warm the batch-1 path (buffers, sessions) before timing it
        single_s = _median_seconds(lambda: acc.run(one), repeats)
        board = getattr(getattr(acc._backend, "manifest", None), "pynq_board", None)
    return SelftestResult(artifact_dir, backend, n, seed, mismatch is None and shape_error is None, mismatch,
                          shape_error, n / batch_s if batch_s > 0 else float("inf"), single_s * 1e3, repeats,
                          board)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m fpga_gan.runtime.selftest ARTIFACT [--n N] [--backend B] [--seed S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m fpga_gan.runtime.selftest",
        description="Check that an artifact gives identical codes on a backend and on the CPU reference, "
                    "and report throughput and latency. Exit 0 identical, 1 mismatch, 2 error.")
    parser.add_argument("artifact", type=Path, help="artifact directory (model.json, and manifest.json for pynq)")
    parser.add_argument("--n", type=int, default=16, help="random input frames to compare (default 16)")
    parser.add_argument("--backend", choices=["pynq", "sim", "cpu"], default="pynq",
                        help="backend under test (default pynq)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"timing repeats, median reported (default {DEFAULT_REPEATS})")
    args = parser.parse_args(argv)
    try:
        result = selftest(args.artifact, n=args.n, backend=args.backend, seed=args.seed, repeats=args.repeats)
    except (ArtifactError, InputError, BoardError, ValueError, OSError) as exc:
        print(f"selftest error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
