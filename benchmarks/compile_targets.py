"""Compile-target benchmark (issue 3): estimated FPS within board budgets, and compile times.

Prints, for each case, the Vivado-free compile time on this machine and the folded design's
estimates. Cases: the shipped try-on on pynq-z2 at 100 MHz (at the requested 100 FPS, and the
fastest folding that fits), the shipped design generator on kv260, and the classic DCGAN-64
(nz 100, ngf 64, W4A4) on kv260 at 200 MHz. The classic DCGAN is not trained here: folding and
resource estimates do not depend on weight values, so it is exported with seeded random weights.

    python benchmarks/compile_targets.py [--out build/bench-compile]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _classic_dcgan(out: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx

    from fpga_gan.models.dcgan import DCGANGenerator
    from fpga_gan.models.layers import QuantSpec

    torch.manual_seed(0)
    model = DCGANGenerator(nz=100, ngf=64, spec=QuantSpec(weight_bits=4, act_bits=4)).eval()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dcgan64_classic.qonnx.onnx"
    export_qonnx(model, torch.randn(1, 100, 1, 1), export_path=str(path), dynamo=False)
    return path


def main() -> None:
    from fpga_gan.compiler.errors import CompileError
    from fpga_gan.compiler.pipeline import CompileConfig, compile_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench-compile"))
    args = parser.parse_args()
    classic = _classic_dcgan(args.out)
    cases = [
        ("tryon", "pynq-z2", 100.0, None),
        ("tryon", "pynq-z2", None, None),
        ("tryon", "pynq-z2", 300.0, None),
        ("dcgan", "kv260", None, None),
        (str(classic), "kv260", None, 200.0),
        (str(classic), "kv260", 1000.0, 200.0),
    ]
    print(f"{'model':<18} {'board':<8} {'target':>7} {'MHz':>5} {'FPS':>8} {'LUT':>8} {'BRAM18':>7} "
          f"{'URAM':>5} {'DSP':>6} {'compile s':>9}")
    for model, board, fps, clock in cases:
        name = Path(model).name.split(".")[0]
        out = args.out / f"{name}-{board}-{fps or 'max'}"
        start = time.perf_counter()
        try:
            report = compile_model(CompileConfig(model=model, board=board, target_fps=fps, clock_mhz=clock,
                                                 out_dir=out, log=lambda _: None)).report
        except CompileError as err:
            print(f"{name:<18} {board:<8} {fps or 'max':>7} {'':>5} failed: {str(err).splitlines()[0]}")
            for line in str(err).splitlines()[1:]:
                print(f"{'':<20}{line}")
            continue
        seconds = time.perf_counter() - start
        t = report["totals"]
        print(f"{name:<18} {board:<8} {fps or 'max':>7} {report['clock_mhz']:>5g} {t['fps']:>8,.0f} "
              f"{t['lut']:>8,.0f} {t['bram18']:>7,.0f} {t['uram']:>5,.0f} {t['dsp']:>6,.0f} {seconds:>9.1f}")
        for d in report["deconv"]:
            print(f"{'':<20}{d['name']}: input {d['input'][0]}x{d['input'][1]} k{d['kernel']}s{d['stride']}, MACs "
                  f"zero-insertion / zero-free = {d['macs_zero_insertion'] / d['macs_zero_free']:.2f}, cycles "
                  f"{d['cycles_zero_insertion'] / d['cycles_zero_free']:.2f}x at PE x SIMD {d['pe_x_simd']}")


if __name__ == "__main__":
    main()
