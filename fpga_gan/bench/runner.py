"""``run_bench``: measure every section in one run and write bench.json, the charts and BENCHMARKS.md.

Why the tools' output goes to a log file at the file-descriptor level: Verilator's make, cocotb
and FINN print from subprocesses and C code that Python's ``redirect_stdout`` cannot reach; the
terminal keeps the progress bar alone, and ``bench.log`` keeps the details for when a case fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from .._files import write_json_atomic
from .accel import accel_row, deconv_rows, run_case, tool_row
from .config import BenchConfig
from .cpu import bench_cpu_model, default_torch_threads, torch_threads
from .machine import describe_machine
from .published import PUBLISHED
from .targets import evaluate_targets

__all__ = ["SCHEMA", "definitions", "run_bench"]

SCHEMA = 1


@contextlib.contextmanager
def _output_to(log_path: Path) -> Iterator[IO[str]]:
    """Point fds 1 and 2 at ``log_path`` for the duration; yield a stream on the real stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    with open(log_path, "a") as log:
        try:
            for fd in saved:
                os.dup2(log.fileno(), fd)
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()


class _Progress:
    """A progress bar over the run's steps, each named as it starts.

    Redrawn every second by a daemon thread: a Verilator build is one step of several minutes,
    and a bar whose clock stands still that long looks like a hung run.
    """

    def __init__(self, total: int, stream: IO[str], enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, file=stream, disable=not enabled, unit="step", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        self.started = False
        self._stop = threading.Event()
        if enabled:
            threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.bar.refresh()

    def step(self, what: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description_str(what)

    def close(self) -> None:
        self._stop.set()
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()


def _total_steps(cfg: BenchConfig) -> int:
    per_case = sum(1 + cfg.fresh_compile + case.simulate for case in cfg.accel_cases)
    return len(cfg.cpu_models) + per_case + bool(cfg.serve_requests) + 1


def definitions(cfg: BenchConfig, threads: int) -> dict[str, str]:
    """How each section's figures are defined, as BENCHMARKS.md states them."""
    chosen = "as asked" if cfg.torch_threads else "the cores the load average left free when the run started"
    return {
        "cpu": (f"Images per second = batch / median seconds per call, over {cfg.repeats} calls after "
                f"{cfg.warmup} warm-up calls, on the machine above; the same random input codes for every "
                f"backend. ORT / Brevitas is the ratio of the two images/s. PyTorch ran {threads} intra-op "
                f"thread(s) ({chosen}: its threads wait for each other in every parallel region, so one on a "
                "core another process keeps busy stalls every call); ONNX Runtime, its default, as the "
                "runtime's cpu backend opens it."),
        "fps": (f"FPS = clock / cycles per frame. Simulated designs: the cycles between back-to-back frames "
                f"in Verilator ({cfg.sim_frames} frames, no backpressure, every frame bit-exact against FINN's "
                "Python execution); the others: FINN's estimate of the slowest layer, marked estimated."),
        "resources": ("Resources: FINN's per-layer estimates summed, used / the part's budget (BRAM in 18 Kb "
                      "halves); there is no synthesis in this flow."),
        "gops": ("GOPS = 2 x MACs per frame x FPS / 10^9, with the MACs the folded graph executes (the "
                 "zero-free transposed convolutions' included); per DSP and per thousand LUTs of the estimate."),
        "bound": ("Physical bound: the MAC lanes the board's DSP budget allows at the clock. Lanes per DSP: "
                  "how finn-rtllib's RTL MVU packs MACs into one DSP at each layer's weight and activation "
                  "widths (4-bit: 4 on a DSP48 with narrow-range weights, 8-bit: 2), weighted by the layers' "
                  "MACs; bound GOPS = 2 x DSPs x lanes per DSP x clock. LUT-based MACs are not counted: every "
                  "matrix layer of this compiler is FINN's DSP-based RTL MVU. Of bound = GOPS / bound GOPS."),
        "deconv": ("Each transposed convolution as the compiler lowers it (zero-free sub-pixel convolution) "
                   "against FINN's zero-insertion route (InferPixelPaddingDeconv) folded to the same PE x SIMD. "
                   "MAC ratio = zero-insertion / zero-free MACs; useful MACs are those of the transposed "
                   "convolution itself. For k4 s2 p1 on an H x W input the zero-free form is four phase MVAUs, "
                   "each a 2 x 2 convolution with Cout outputs on its own asymmetrically padded H x W window grid, "
                   "concatenated into DepthToSpace(2): its MACs are exactly the useful ones, and zero insertion "
                   "spends 4 x the useful ones, so the ratio is 4 on every input size. When k % s != 0 (k3 s2 p1 "
                   "op1, k5 s2 p2 op1) the phases have kernels of unequal size (for k3 s2: 2 x 2, 2 x 1, 1 x 2, "
                   "1 x 1), each still spending only useful MACs; spent / useful = zero-free / useful MACs, 1 when "
                   "no MAC meets an inserted zero. Layer shape: kernel, stride, padding and output padding (op)."),
        "tools": ("Compile: the Vivado-free flow (QONNX to folded, estimated RTL layers, every stage checked "
                  "bit-exact). Cold compile: into a fresh directory; this run: in the build directory, whose "
                  "finished stages are reused. RTL generation and the Verilator build are cached by content, "
                  "so a cache hit shows the time measured when they last ran, and says so."),
        "serve": (f"The web API (`fpga-gan serve`, uvicorn, the zoo's models on the cpu backend) on loopback: "
                  f"{cfg.serve_clients} concurrent clients send {cfg.serve_requests} requests, cycling through a "
                  "try-on, a garment edit and a sample of four designs, after one warm-up request. Latency: "
                  "from sending a request to the last byte of its answer (JSON with PNG images). Failed: any "
                  "answer other than 200, or none."),
        "published": ("Quoted from the sources below, not measured here; other models, precisions and boards, "
                      "so they place the measured figures, they do not rank them."),
    }


def _load_previous(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _measure(cfg: BenchConfig, threads: int, progress: _Progress, log_file: IO[str]) -> dict:
    """Run every CPU model and accelerator case; the sections of bench.json without the report parts."""
    from .models import resolve_model

    def log(message: str) -> None:
        log_file.write(message + "\n")
        log_file.flush()

    cpu = []
    with torch_threads(threads):
        for name in cfg.cpu_models:
            progress.step(f"cpu: {name}")
            log(f"==== cpu {name} ({threads} PyTorch threads)")
            cpu += bench_cpu_model(name, cfg.batches, cfg.repeats, cfg.warmup)
    previous = {r["case"]: r for r in _load_previous(cfg.out / "bench.json").get("tools", [])}
    accelerators, deconv, tools = [], [], []
    for case in cfg.accel_cases:
        log(f"==== {case.name}")
        model = resolve_model(case.model, cfg.out / "models")
        result = run_case(case, model, Path(cfg.build_root) / case.build_name(), cfg.out / "scratch",
                          cfg.sim_frames, cfg.fresh_compile, log, progress.step)
        accelerators.append(accel_row(result))
        deconv += deconv_rows(result)
        tools.append(tool_row(result, previous.get(case.name)))
    serve = {}
    if cfg.serve_requests:
        from .serve_load import bench_serve

        progress.step("web API load run")
        log(f"==== web API: {cfg.serve_clients} clients, {cfg.serve_requests} requests")
        serve = bench_serve(cfg.serve_clients, cfg.serve_requests)
    return {"cpu": cpu, "accelerators": accelerators, "deconv": deconv, "tools": tools, "serve": serve}


def run_bench(cfg: BenchConfig) -> dict:
    """Measure, then write ``bench.json``, the charts (if ``cfg.charts``) and the markdown (if set)."""
    from .charts import write_charts
    from .markdown import write_markdown

    start = time.perf_counter()
    machine = describe_machine()                # before the run: its load average is the others' work
    threads = cfg.torch_threads or default_torch_threads(machine)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "bench.log"
    log_path.write_text("")
    with _output_to(log_path) as terminal, open(log_path, "a") as log_file:
        progress = _Progress(_total_steps(cfg), terminal, cfg.progress)
        try:
            sections = _measure(cfg, threads, progress, log_file)
            progress.step("report")
            bench = {"schema": SCHEMA, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "command": cfg.command, "machine": machine, "config": cfg.as_json(),
                     "definitions": definitions(cfg, threads), **sections, "published": list(PUBLISHED),
                     "files": {"out": str(out), "json": str(out / "bench.json"), "log": str(log_path),
                               "markdown": str(cfg.markdown) if cfg.markdown else None, "charts": []}}
            bench["targets"] = evaluate_targets(cfg.targets, bench)
            bench["wall_seconds"] = time.perf_counter() - start
            bench["wall_minutes"] = bench["wall_seconds"] / 60
            bench = json.loads(json.dumps(bench, default=_json_default))    # the markdown sees what the file says
            if cfg.charts:
                bench["files"]["charts"] = [str(p) for p in write_charts(bench, out)]
            _write_json(out / "bench.json", bench)
            if cfg.markdown:
                write_markdown(bench, Path(cfg.markdown))
        finally:
            progress.close()
    return bench


def _write_json(path: Path, data: dict) -> None:
    write_json_atomic(path, data)


def _json_default(obj):
    """numpy scalars (FINN's estimates return them) as plain numbers."""
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
