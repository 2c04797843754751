"""``fpga-gan bench``: CPU inference, accelerators, transposed convolutions and tool times in one run.

The command object is registered by :mod:`fpga_gan.cli` (``make bench`` runs
``fpga-gan bench --out build/bench``); ``python -m fpga_gan.bench`` runs it on its own.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

__all__ = ["bench"]


def _command_line() -> str:
    """How this run was invoked, as the ``fpga-gan bench`` command it is equivalent to."""
    args = sys.argv[1:]
    if args[:1] == ["bench"]:
        args = args[1:]
    return " ".join(["fpga-gan", "bench", *map(shlex.quote, args)])


@click.command("bench")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/bench"), show_default=True,
              help="Where bench.json, bench.log and the PNG charts go.")
@click.option("--build-root", type=click.Path(path_type=Path), default=Path("build"), show_default=True,
              help="Accelerator build directories (<model>-<board>, shared with fpga-gan compile / make sim).")
@click.option("--markdown", type=click.Path(path_type=Path), default=Path("BENCHMARKS.md"), show_default=True,
              help="The markdown report to write.")
@click.option("--no-markdown", is_flag=True, help="Write no markdown report.")
@click.option("--repeats", default=30, show_default=True, help="Timed calls per CPU measurement.")
@click.option("--warmup", default=5, show_default=True, help="Untimed calls before each CPU measurement.")
@click.option("--threads", "torch_threads", type=int, default=None,
              help="PyTorch threads for the CPU timings (default: the cores the load average leaves free).")
@click.option("--frames", default=3, show_default=True, help="Frames per RTL simulation (at least 2).")
@click.option("--fresh-compile/--cached-compile", default=True, show_default=True,
              help="Also compile each case into a fresh directory to time a cold compile.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench(out_dir: Path, build_root: Path, markdown: Path, no_markdown: bool, repeats: int, warmup: int,
          torch_threads: int | None, frames: int, fresh_compile: bool, no_progress: bool) -> None:
    """Measure CPU inference, the accelerators (RTL-simulated FPS, resources, GOPS against the board's
    bound), zero-free vs zero-insertion transposed convolutions and tool times; write bench.json,
    charts and BENCHMARKS.md."""
    from .config import BenchConfig
    from .runner import run_bench

    if frames < 2:
        raise click.BadParameter("at least 2: cycles per frame are measured between frames", param_hint="--frames")
    cfg = BenchConfig(out=out_dir, build_root=build_root, markdown=None if no_markdown else markdown,
                      repeats=repeats, warmup=warmup, torch_threads=torch_threads, sim_frames=frames,
                      fresh_compile=fresh_compile, progress=not no_progress, command=_command_line())
    result = run_bench(cfg)
    for target in result["targets"]:
        status = "not measured" if target["met"] is None else "met" if target["met"] else "MISSED"
        value = "—" if target["value"] is None else f"{target['value']:,.2f} {target['unit']}"
        click.echo(f"{status:<12} {target['title']}: {value} (needed {target['threshold']:,g} {target['unit']})")
    click.echo(f"wrote {result['files']['json']}" + (f" and {cfg.markdown}" if cfg.markdown else "")
               + f" in {result['wall_minutes']:.1f} min (details: {result['files']['log']})")
