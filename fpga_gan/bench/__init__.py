"""Benchmarks of the toolkit: ``fpga-gan bench`` / ``make bench``.

One run measures, side by side: CPU inference (float twin, Brevitas, ONNX Runtime), the compiled
accelerators (RTL-simulated FPS, resources, GOPS against the board's physical bound), the
zero-free transposed convolution against FINN's zero-insertion route, and tool times; it writes
``bench.json``, PNG charts and ``BENCHMARKS.md``. Every figure says whether it was measured,
estimated, counted or derived; published figures of other designs are kept apart, with sources.
"""

from .charts import write_charts
from .config import AccelCase, BenchConfig, Target
from .markdown import render_markdown, write_markdown
from .runner import run_bench

__all__ = ["AccelCase", "BenchConfig", "Target", "render_markdown", "run_bench", "write_charts", "write_markdown"]
