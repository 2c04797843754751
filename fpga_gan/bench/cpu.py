"""CPU inference speed of the generators: the float twin and the Brevitas model in PyTorch eager,
and ONNX Runtime on the QCDQ graph (the runtime's ``cpu`` backend).

Why the median of repeated runs after a warm-up: the first calls pay for allocation, ONNX Runtime's
graph optimisation and PyTorch's dispatch caches, and a shared machine adds outliers; the median
of the rest is what a steady caller sees. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

__all__ = ["BACKENDS", "CpuTiming", "bench_cpu_model", "default_torch_threads", "free_cores", "time_call",
           "torch_threads"]

# bench.json keys of the three ways to run a generator on the CPU, in table order.
BACKENDS: dict[str, str] = {
    "float_twin_eager": "float twin, PyTorch eager",
    "brevitas_eager": "Brevitas W4A4, PyTorch eager",
    "onnxruntime_qcdq": "ONNX Runtime, QCDQ graph (cpu backend)",
}


@dataclass
class CpuTiming:
    """Seconds per call: the median and every timed repeat (for the record, not the table)."""

    median_s: float
    times_s: list[float]

    def images_per_second(self, batch: int) -> float:
        return batch / self.median_s


def time_call(fn: Callable[[], object], repeats: int, warmup: int) -> CpuTiming:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return CpuTiming(statistics.median(times), times)


def free_cores(usable: int, load_average: float | None) -> int:
    """Cores other processes leave free: the usable ones minus the 1-minute load, at least one.

    Why PyTorch gets no more threads than that: its OpenMP threads meet at a barrier in every
    parallel region, so one thread on a core another process keeps busy stalls the whole call
    (measured on this project's 2-core machine beside a training run: 528 ms instead of 19 ms per
    Brevitas DCGAN call with 2 threads). ONNX Runtime's pool degrades gracefully and keeps its
    default, as the runtime's cpu backend opens it.
    """
    busy = round(load_average) if load_average is not None else 0
    return max(1, usable - busy)


def default_torch_threads(machine: dict) -> int:
    """:func:`free_cores` of a :func:`fpga_gan.bench.machine.describe_machine` record, whose load
    average was read before the measurements started."""
    load = machine["load_average"][0] if machine.get("load_average") else None
    return free_cores(machine["cores_usable"], load)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """PyTorch's intra-op thread count set to ``count`` for the block, restored afterwards."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(saved)


def _inputs(acc, batch: int):
    """The same random input codes for every backend: codes for ONNX Runtime, their real values
    (codes x scale, what the input quantizer would produce) for the PyTorch models."""
    import torch

    spec = acc.input_spec
    lo, hi = spec.value_range
    codes = np.random.default_rng(0).integers(lo, hi + 1, (batch, *spec.shape[1:])).astype(acc.input_dtype)
    return codes, torch.from_numpy(codes.astype(np.float32) * np.float32(spec.scale))


def bench_cpu_model(name: str, batches: tuple[int, ...], repeats: int, warmup: int,
                    artifact_root=None) -> list[dict]:
    """One row per batch size for zoo model ``name``: images/s of each backend and the ratios."""
    import torch

    from ..artifacts import DEFAULT_ARTIFACT_ROOT, zoo_artifact
    from ..models.zoo import load_zoo_model
    from ..runtime import Accelerator

    quant, twin = load_zoo_model(name), load_zoo_model(name, float_twin=True)
    rows = []
    with Accelerator.open(zoo_artifact(name, artifact_root or DEFAULT_ARTIFACT_ROOT), backend="cpu") as acc, \
            torch.no_grad():
        for batch in batches:
            codes, x = _inputs(acc, batch)
            calls = {"float_twin_eager": partial(twin, x), "brevitas_eager": partial(quant, x),
                     "onnxruntime_qcdq": partial(acc.run, codes)}
            timings = {key: time_call(calls[key], repeats, warmup) for key in BACKENDS}
            rows.append(_row(name, batch, timings, repeats, warmup))
    return rows


def _row(name: str, batch: int, timings: dict[str, CpuTiming], repeats: int, warmup: int) -> dict:
    how = f"measured: median wall time of {repeats} calls after {warmup} warm-up calls, this machine"
    import torch

    row: dict = {"model": name, "batch": batch, "repeats": repeats, "warmup": warmup,
                 "torch_threads": torch.get_num_threads()}
    for key, timing in timings.items():
        row[key] = timing.images_per_second(batch)
        row[f"{key}_median_ms"] = 1e3 * timing.median_s
    row["ort_vs_brevitas"] = row["onnxruntime_qcdq"] / row["brevitas_eager"]
    row["ort_vs_float"] = row["onnxruntime_qcdq"] / row["float_twin_eager"]
    row["provenance"] = {**{key: how for key in timings},
                         "ort_vs_brevitas": "derived: ratio of the measured images/s",
                         "ort_vs_float": "derived: ratio of the measured images/s"}
    return row
