"""CPU inference speed of the generators: ONNX Runtime (QCDQ) vs Brevitas eager vs the float twin.

A thin caller of :func:`fpga_gan.bench.cpu.bench_cpu_model` (``make bench`` runs the same code as
part of the full benchmark). Prints images/s at batch 1 and 16 (median of repeated timed runs after
warm-up) and the ratios. A benchmark, not a test: nothing here asserts a speed.

    .venv/bin/python benchmarks/cpu_inference.py [--model tryon|dcgan|all] [--repeats 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json

from fpga_gan.bench.cpu import bench_cpu_model, default_torch_threads, torch_threads
from fpga_gan.bench.machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tryon", "dcgan", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads (default: the cores the load average leaves free)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    names = ["tryon", "dcgan"] if args.model == "all" else [args.model]
    machine = describe_machine()
    threads = args.threads or default_torch_threads(machine)
    results = {"machine": machine, "torch_threads": threads, "rows": []}
    for name in names:
        with torch_threads(threads):
            rows = bench_cpu_model(name, (1, 16), args.repeats, args.warmup)
        results["rows"] += rows
        print(f"{name}: images/s (median of {args.repeats}, {threads} PyTorch threads)")
        print(f"  {'batch':>5} {'ORT QCDQ':>10} {'Brevitas':>10} {'float':>10} {'ORT/Brev':>9} {'ORT/float':>9}")
        for r in rows:
            print(f"  {r['batch']:>5} {r['onnxruntime_qcdq']:>10.1f} {r['brevitas_eager']:>10.1f} "
                  f"{r['float_twin_eager']:>10.1f} {r['ort_vs_brevitas']:>8.2f}x {r['ort_vs_float']:>8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
