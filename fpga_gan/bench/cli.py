"""``fpga-gan bench``: CPU inference, accelerators, transposed convolutions and tool times in one run.

The command object is registered by :mod:`fpga_gan.cli` (``make bench`` runs
``fpga-gan bench --out build/bench``); ``python -m fpga_gan.bench`` runs it on its own.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

__all__ = ["bench", "parse_case"]

if TYPE_CHECKING:
    from .config import AccelCase


def _command_line() -> str:
    """How this run was invoked, as the ``fpga-gan bench`` command it is equivalent to."""
    args = sys.argv[1:]
    if args[:1] == ["bench"]:
        args = args[1:]
    return " ".join(["fpga-gan", "bench", *map(shlex.quote, args)])


def parse_case(text: str) -> AccelCase:
    """``MODEL@BOARD`` as an accelerator case: MODEL a zoo name (or a model the bench generates) or
    a QONNX ``.onnx`` file, BOARD one of ``hw/boards.json``. The case is named by the file's stem
    (``build/reference/pix2pix.qonnx.onnx@kv260`` is ``pix2pix@kv260``)."""
    from ..compiler.boards import BOARDS
    from .config import AccelCase
    from .models import GENERATED_DCGANS

    model, at, board = text.rpartition("@")
    if not at or not model or not board:
        raise click.BadParameter(f"expected MODEL@BOARD (e.g. build/reference/pix2pix.qonnx.onnx@kv260), "
                                 f"got {text!r}", param_hint="--case")
    if board not in BOARDS:
        raise click.BadParameter(f"unknown board {board!r} in {text!r}; known: {', '.join(BOARDS)}",
                                 param_hint="--case")
    if model.endswith(".onnx"):
        if not Path(model).is_file():
            raise click.BadParameter(f"no QONNX file {model!r} (in {text!r})", param_hint="--case")
    else:
        from ..models.zoo import ZOO

        if model not in ZOO and model not in GENERATED_DCGANS:
            raise click.BadParameter(f"unknown model {model!r} in {text!r}: give a zoo name ({', '.join(ZOO)}), "
                                     f"one the bench generates ({', '.join(GENERATED_DCGANS)}) or a QONNX "
                                     ".onnx file", param_hint="--case")
    return AccelCase(model, board)


def _parse_cases(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[AccelCase, ...]:
    return tuple(parse_case(v) for v in values)


def accel_cases(extra: tuple[AccelCase, ...], defaults: bool = True) -> tuple[AccelCase, ...]:
    """The default cases (unless ``defaults`` is False) and ``extra`` after them, each once; two
    different cases of one name would share a build directory and a table row, so that is an error."""
    from .config import DEFAULT_ACCEL_CASES

    cases: dict[str, AccelCase] = {}
    for case in (*(DEFAULT_ACCEL_CASES if defaults else ()), *extra):
        seen = cases.setdefault(case.name, case)
        if seen != case:
            raise click.BadParameter(f"two cases are named {case.name}: {seen.model} and {case.model} (name the "
                                     "files differently)", param_hint="--case")
    return tuple(cases.values())


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
@click.option("--case", "cases", multiple=True, metavar="MODEL@BOARD", callback=_parse_cases,
              help="Also compile and simulate MODEL (a zoo name or a QONNX .onnx file, e.g. your own generator) "
                   "for BOARD; repeatable. Each such case gets the targets 'one partition of RTL layers that "
                   "fits' and 'simulated cycles within 15% of the estimate'.")
@click.option("--no-default-cases", is_flag=True, help="Only the --case cases, not the zoo's.")
@click.option("--serve-clients", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Concurrent clients of the web API's load run.")
@click.option("--serve-requests", default=150, show_default=True, type=click.IntRange(0, 100_000),
              help="Requests of the web API's load run (0: no load run).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench(out_dir: Path, build_root: Path, markdown: Path, no_markdown: bool, repeats: int, warmup: int,
          torch_threads: int | None, frames: int, fresh_compile: bool, cases: tuple[AccelCase, ...],
          no_default_cases: bool, serve_clients: int, serve_requests: int, no_progress: bool) -> None:
    """Measure CPU inference, the accelerators (RTL-simulated FPS, resources, GOPS against the board's
    bound), zero-free vs zero-insertion transposed convolutions and tool times; write bench.json,
    charts and BENCHMARKS.md."""
    from .config import DEFAULT_TARGETS, BenchConfig, case_targets
    from .runner import run_bench

    if frames < 2:
        raise click.BadParameter("at least 2: cycles per frame are measured between frames", param_hint="--frames")
    cfg = BenchConfig(out=out_dir, build_root=build_root, markdown=None if no_markdown else markdown,
                      repeats=repeats, warmup=warmup, torch_threads=torch_threads, sim_frames=frames,
                      fresh_compile=fresh_compile, progress=not no_progress, serve_clients=serve_clients,
                      serve_requests=serve_requests, command=_command_line(),
                      accel_cases=accel_cases(cases, defaults=not no_default_cases),
                      targets=DEFAULT_TARGETS + tuple(t for case in dict.fromkeys(cases) for t in case_targets(case)))
    result = run_bench(cfg)
    for target in result["targets"]:
        status = "not measured" if target["met"] is None else "met" if target["met"] else "MISSED"
        why = f": {target['detail']}" if target["met"] is False and target["detail"] else ""
        click.echo(f"{status:<12} {target['title']}: {_value(target)} (needed {_needed(target)}){why}")
    click.echo(f"wrote {result['files']['json']}" + (f" and {cfg.markdown}" if cfg.markdown else "")
               + f" in {result['wall_minutes']:.1f} min (details: {result['files']['log']})")


def _with_unit(number: str, unit: str) -> str:
    return f"{number}{unit}" if unit in ("x", "%", "") else f"{number} {unit}"


def _value(target: dict) -> str:
    value = target["value"]
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _with_unit(f"{value:,.2f}", target["unit"])


def _needed(target: dict) -> str:
    from .config import COMPARISONS

    if target["yes_no"]:
        return "yes"
    return f"{COMPARISONS[target['compare']]} " + _with_unit(f"{target['threshold']:,g}", target["unit"])
