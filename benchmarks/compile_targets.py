"""Compile-target benchmark (issue 3): estimated FPS within board budgets, and compile times.

A thin caller of :mod:`fpga_gan.bench` (``make bench`` compiles and simulates the same designs
as part of the full benchmark). Prints, for each case, the Vivado-free compile time on this
machine and the folded design's estimates. Cases: the shipped try-on on pynq-z2 at 100 MHz (at
the requested 100 FPS, the fastest folding that fits, and 300 FPS), the shipped design generator
on kv260, and the classic DCGAN-64 (nz 100, ngf 64, W4A4, seeded random weights: folding and
estimates do not depend on weight values) on kv260 at 200 MHz.

    python benchmarks/compile_targets.py [--out build/bench-compile]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fpga_gan.bench.accel import compile_case
from fpga_gan.bench.config import CLASSIC_DCGAN, AccelCase
from fpga_gan.bench.models import resolve_model

CASES = (
    AccelCase("tryon", "pynq-z2", target_fps=100.0),
    AccelCase("tryon", "pynq-z2"),
    AccelCase("tryon", "pynq-z2", target_fps=300.0),
    AccelCase("dcgan", "kv260"),
    AccelCase(CLASSIC_DCGAN, "kv260", clock_mhz=200.0),
    AccelCase(CLASSIC_DCGAN, "kv260", clock_mhz=200.0, target_fps=1000.0),
)


def _print_case(case: AccelCase, outcome) -> None:
    fps = f"{case.target_fps:g}" if case.target_fps else "max"
    if outcome.report is None:
        first, *rest = outcome.message.splitlines() or [""]
        print(f"{case.name:<26} {fps:>7} {'':>5} {outcome.status}: {first}")
        for line in rest:
            print(f"{'':<28}{line}")
        return
    report, t = outcome.report, outcome.report["totals"]
    print(f"{case.name:<26} {fps:>7} {report['clock_mhz']:>5g} {t['fps']:>8,.0f} {t['lut']:>8,.0f} "
          f"{t['bram18']:>7,.0f} {t['uram']:>5,.0f} {t['dsp']:>6,.0f} {outcome.seconds:>9.1f} {outcome.cache:>7}")
    for d in report["deconv"]:
        print(f"{'':<28}{d['name']}: input {d['input'][0]}x{d['input'][1]} k{d['kernel']}s{d['stride']}, MACs "
              f"zero-insertion / zero-free = {d['macs_zero_insertion'] / d['macs_zero_free']:.2f}, cycles "
              f"{d['cycles_zero_insertion'] / d['cycles_zero_free']:.2f}x at PE x SIMD {d['pe_x_simd']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench-compile"))
    args = parser.parse_args()
    print(f"{'case':<26} {'target':>7} {'MHz':>5} {'FPS':>8} {'LUT':>8} {'BRAM18':>7} {'URAM':>5} {'DSP':>6} "
          f"{'compile s':>9} {'cache':>7}")
    for case in CASES:
        model = resolve_model(case.model, args.out)
        _print_case(case, compile_case(case, model, args.out / case.build_name(), log=lambda _: None))


if __name__ == "__main__":
    main()
