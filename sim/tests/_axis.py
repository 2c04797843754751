"""Plumbing shared by the op testbenches: random pause patterns, settings, the AXI-Stream rule check.

cocotb puts this directory on the import path, so each ``tb_*.py`` imports it as ``_axis``.
"""

from __future__ import annotations

import os
import random

from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time


def pauses(probability: float, seed: int):
    """An endless, seeded pause pattern for cocotbext-axi's ``set_pause_generator``."""
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


async def check_stable(clk, tvalid, tready, tdata, violations: list, stalls: list):
    """AXI-Stream rule: once tvalid is high it stays high, with tdata unchanged, until tready.

    ``stalls[0]`` counts the cycles with tvalid high and tready low (the backpressure exercised)."""
    held = None
    while True:
        await RisingEdge(clk)
        valid, ready = int(tvalid.value), int(tready.value)
        data = int(tdata.value) if valid else None
        if held is not None and (not valid or data != held):
            violations.append(f"t={get_sim_time('ns')}ns: stalled beat {held:#x} changed to "
                              f"valid={valid} data={data if data is None else hex(data)}")
        held = data if (valid and not ready) else None
        stalls[0] += bool(valid and not ready)


