"""CPU inference speed of the generators: ONNX Runtime (QCDQ) vs Brevitas eager vs the float twin.

Prints images/s at batch 1 and 16 (median of repeated timed runs after warm-up) and the ratios.
A benchmark, not a test: numbers depend on the machine, so nothing here asserts a speed.

    .venv/bin/python benchmarks/cpu_inference.py [--model tryon|dcgan] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from fpga_gan.artifacts import zoo_artifact
from fpga_gan.models.zoo import load_zoo_model
from fpga_gan.runtime import Accelerator


def images_per_second(fn, batch: int, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def bench_model(name: str, repeats: int) -> dict:
    quant, twin = load_zoo_model(name), load_zoo_model(name, float_twin=True)
    acc = Accelerator.open(zoo_artifact(name), backend="cpu")
    shape = [d for d in acc.input_spec.shape[1:]]
    lo, hi = acc.input_spec.value_range
    rows = {}
    for batch in (1, 16):
        codes = np.random.default_rng(0).integers(lo, hi + 1, (batch, *shape)).astype(acc.input_dtype)
        x = torch.from_numpy(codes.astype(np.float32) * np.float32(acc.input_spec.scale))
        with torch.no_grad():
            rows[batch] = {
                "onnxruntime_qcdq": images_per_second(lambda: acc.run(codes), batch, repeats),
                "brevitas_eager": images_per_second(lambda: quant(x), batch, repeats),
                "float_twin_eager": images_per_second(lambda: twin(x), batch, repeats),
            }
        r = rows[batch]
        r["ort_vs_brevitas"] = r["onnxruntime_qcdq"] / r["brevitas_eager"]
        r["ort_vs_float"] = r["onnxruntime_qcdq"] / r["float_twin_eager"]
    acc.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tryon", "dcgan", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    names = ["tryon", "dcgan"] if args.model == "all" else [args.model]
    results = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "models": {}}
    for name in names:
        rows = bench_model(name, args.repeats)
        results["models"][name] = rows
        print(f"{name}: images/s (median of {args.repeats})")
        print(f"  {'batch':>5} {'ORT QCDQ':>10} {'Brevitas':>10} {'float':>10} {'ORT/Brev':>9} {'ORT/float':>9}")
        for batch, r in rows.items():
            print(f"  {batch:>5} {r['onnxruntime_qcdq']:>10.1f} {r['brevitas_eager']:>10.1f} "
                  f"{r['float_twin_eager']:>10.1f} {r['ort_vs_brevitas']:>8.2f}x {r['ort_vs_float']:>8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
