"""The compile report: ``report.json``, ``report.md`` and ``cycles.png`` in the build directory.

Why three files: ``report.json`` is what tools and tests read back (benchmarks, regression checks
of resource estimates); ``report.md`` is what a person reads to see whether the design fits and
whether it is bit-exact; ``cycles.png`` shows at a glance which layer limits the frame rate, since
a dataflow pipeline runs only as fast as its slowest node and folding effort belongs there.

Each file is written atomically (a temporary file in the same directory, then ``os.replace``), and
all three are rendered before the first is written, so a failure leaves the previous report whole.

Schema of the report dict (the content of ``report.json``)::

    model         str     the model's name
    board         str     the board's name (see fpga_gan.compiler.boards.BOARDS)
    clock_mhz     float   the target clock
    nodes         list    one dict per dataflow node, in pipeline order:
        name        str
        op_type     str
        pe, simd    int | None  folding (None for nodes that have none)
        macs        int | None  multiply-accumulates per frame (None for non-compute nodes)
        cycles      int         clock cycles per frame (FINN's expected cycles)
        lut, bram18, uram, dsp  numbers  resource estimates
    totals        dict    see totals_from_nodes: lut, bram18, uram, dsp (sums),
                          cycles_per_frame (the bottleneck node's cycles), fps
    budget        dict    fpga_gan.compiler.boards.budget_dict(board):
                          name, part, lut, ff, bram18, uram, dsp
    deconv        list    one dict per transposed convolution that was lowered:
        name                                         str
        macs_zero_free, macs_zero_insertion          int  per frame
        cycles_zero_free, cycles_zero_insertion      int  per frame
    verification  list    one dict per simulated stage:
        stage       str     e.g. "python", "cppsim", "rtlsim"
        bit_exact   bool    the stage's outputs equal the reference exactly
        inputs      int     how many inputs were compared
    stages        list    optional, wall time of the compile stages:
        stage       str
        seconds     float

``deconv``, ``verification`` and ``stages`` may be absent or empty; the other keys are required.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._files import write_bytes_atomic

__all__ = ["REQUIRED_KEYS", "RESOURCES", "render_markdown", "render_png", "totals_from_nodes", "write_report"]

# Resources estimated per node and summed into the totals.
RESOURCES: tuple[str, ...] = ("lut", "bram18", "uram", "dsp")
REQUIRED_KEYS: tuple[str, ...] = ("model", "board", "clock_mhz", "nodes", "totals")

_LABELS = {"lut": "LUT", "ff": "FF", "bram18": "BRAM18", "uram": "URAM", "dsp": "DSP"}


def _number(node: Mapping[str, Any], key: str) -> float:
    """``node[key]`` as a number, with an error naming the node when it is missing or not one."""
    value = node.get(key)
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise ValueError(f"node {node.get('name', '?')!r}: {key} must be a number, got {value!r}")
    return value


def totals_from_nodes(nodes: Sequence[Mapping[str, Any]], clock_mhz: float) -> dict[str, float]:
    """Summed resources and the pipeline's throughput.

    Resources add up because every node is its own hardware. Cycles do not: the nodes of a
    dataflow pipeline work on successive frames at once, so a frame leaves every
    ``max(cycles)`` clocks, and ``fps = clock_mhz * 1e6 / cycles_per_frame``.
    """
    if not nodes:
        raise ValueError("no nodes: an empty graph has no throughput")
    if not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be positive, got {clock_mhz!r}")
    totals: dict[str, float] = {key: sum(_number(n, key) for n in nodes) for key in RESOURCES}
    cycles = max(_number(n, "cycles") for n in nodes)
    if not cycles > 0:
        raise ValueError("every node has 0 cycles per frame: no throughput can be computed")
    totals["cycles_per_frame"] = cycles
    totals["fps"] = clock_mhz * 1e6 / cycles
    return totals


# --------------------------------------------------------------------------------------- helpers


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays (as FINN's estimates return them) as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable: {obj!r}")


def _fmt(x: Any, digits: int = 1) -> str:
    """A table cell: counts with thousands separators, fractions with ``digits``, None as a dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)) or hasattr(x, "__float__"):
        f = float(x)
        if f.is_integer() and abs(f) < 1e15:
            return f"{int(f):,}"
        return f"{f:,.{digits}f}"
    return _cell(x)


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell (a ``|`` would split the cell)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one ``l`` or ``r`` per column."""
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ratio(num: Any, den: Any) -> str:
    try:
        return f"{float(num) / float(den):.2f}×"
    except (TypeError, ValueError, ZeroDivisionError):
        return "—"


def _bottleneck(nodes: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the node with the most cycles per frame (the first one on a tie)."""
    if not nodes:
        return None
    cycles = [float(n.get("cycles") or 0) for n in nodes]
    return max(range(len(cycles)), key=cycles.__getitem__)


# --------------------------------------------------------------------------------------- renderers


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: the summary a person reads, every table derived from ``report`` alone."""
    nodes = report["nodes"]
    totals = report["totals"]
    budget = report.get("budget") or {}
    bn = _bottleneck(nodes)
    out = [f"# Compile report: {report['model']} on {report['board']}", ""]
    part = f" (`{budget['part']}`)" if budget.get("part") else ""
    out.append(f"- **Board:** {report['board']}{part}")
    out.append(f"- **Clock:** {_fmt(report['clock_mhz'])} MHz")
    out.append(
        f"- **Throughput:** {_fmt(totals.get('fps'))} frames/s "
        f"({_fmt(totals.get('cycles_per_frame'))} cycles per frame)"
    )
    if bn is not None:
        out.append(f"- **Bottleneck:** `{_cell(nodes[bn]['name'])}` ({_cell(nodes[bn].get('op_type', ''))})")
    out.append("")

    out += ["## Resources", ""]
    rows = []
    over = []
    for key in ("lut", "ff", "bram18", "uram", "dsp"):
        if key not in totals:
            continue
        used, have = totals[key], budget.get(key)
        if have is None:
            pct = "—"
        elif have:
            pct = f"{float(used) / float(have):.1%}"
        else:
            pct = "0.0%" if not used else "∞"
        fits = have is None or float(used) <= float(have)
        if not fits:
            over.append(_LABELS[key])
        rows.append([_LABELS[key], _fmt(used), _fmt(have), pct + ("" if fits else " **over**")])
    out += _table(["resource", "used", "budget", "% used"], rows, "lrrr")
    out.append("")
    if budget:
        out += [f"Over budget: {', '.join(over)}." if over else "Fits the board.", ""]

    out += ["## Nodes", ""]
    rows = []
    for i, n in enumerate(nodes):
        name = f"`{_cell(n.get('name'))}`" + (" ◀ bottleneck" if i == bn else "")
        rows.append(
            [
                name,
                _cell(n.get("op_type", "")),
                *(_fmt(n.get(k)) for k in ("pe", "simd", "macs", "cycles", "lut", "bram18", "uram", "dsp")),
            ]
        )
    out += _table(
        ["name", "op_type", "pe", "simd", "macs", "cycles", "lut", "bram18", "uram", "dsp"], rows, "llrrrrrrrr"
    )
    out.append("")

    out += ["## Transposed convolutions: zero-free vs zero-insertion", ""]
    deconv = report.get("deconv") or []
    if deconv:
        rows = [
            [
                f"`{_cell(d.get('name'))}`",
                _fmt(d.get("macs_zero_free")),
                _fmt(d.get("macs_zero_insertion")),
                _ratio(d.get("macs_zero_insertion"), d.get("macs_zero_free")),
                _fmt(d.get("cycles_zero_free")),
                _fmt(d.get("cycles_zero_insertion")),
                _ratio(d.get("cycles_zero_insertion"), d.get("cycles_zero_free")),
            ]
            for d in deconv
        ]
        out += _table(
            [
                "name",
                "MACs zero-free",
                "MACs zero-insertion",
                "ratio",
                "cycles zero-free",
                "cycles zero-insertion",
                "ratio",
            ],
            rows,
            "lrrrrrr",
        )
        out += ["", "The ratio is zero-insertion over zero-free: the work the sub-pixel lowering saves.", ""]
    else:
        out += ["No transposed convolutions.", ""]

    out += ["## Verification", ""]
    verification = report.get("verification") or []
    if verification:
        rows = [
            [_cell(v.get("stage")), "yes" if v.get("bit_exact") else "**NO**", _fmt(v.get("inputs"))]
            for v in verification
        ]
        out += _table(["stage", "bit-exact", "inputs"], rows, "llr")
    else:
        out.append("Not verified.")
    out.append("")

    stages = report.get("stages") or []
    if stages:
        out += ["## Compile stages", ""]
        rows = [[_cell(s.get("stage")), _fmt(s.get("seconds"))] for s in stages]
        total = sum(float(s.get("seconds") or 0) for s in stages)
        rows.append(["**total**", f"**{_fmt(total)}**"])
        out += _table(["stage", "seconds"], rows, "lr")
        out.append("")
    return "\n".join(out)


def render_png(report: Mapping[str, Any]) -> bytes:
    """``cycles.png``: cycles per frame of every node, the bottleneck in a contrasting colour.

    Drawn on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas rather than pyplot, so
    the global backend and pyplot's figure registry are left alone (safe in threads and in
    notebooks).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    nodes = report["nodes"]
    totals = report["totals"]
    names = [str(n.get("name")) for n in nodes]
    cycles = [float(n.get("cycles") or 0) for n in nodes]
    bn = _bottleneck(nodes)

    fig = Figure(figsize=(9, max(3.0, 0.32 * len(nodes) + 1.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = ["#d62728" if i == bn else "#1f77b4" for i in range(len(nodes))]
    ax.barh(range(len(nodes)), cycles, color=colours)
    ax.set_yticks(range(len(nodes)), labels=names, fontsize=8)
    ax.invert_yaxis()  # pipeline order, top to bottom
    ax.set_xlabel("cycles per frame")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
    if bn is not None:
        ax.axvline(cycles[bn], color="#d62728", linestyle="--", linewidth=1)
        ax.annotate(
            f"bottleneck: {names[bn]}\n{cycles[bn]:,.0f} cycles",
            xy=(cycles[bn], 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-4, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=8,
            color="#d62728",
        )
    fps = totals.get("fps")
    fps_text = f"{float(fps):,.1f} fps" if fps is not None else "fps unknown"
    ax.set_title(f"{report['model']} on {report['board']}: {fps_text} @ {float(report['clock_mhz']):g} MHz")
    ax.margins(x=0.02)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------------------- writing


def write_report(build_dir: Path, report: dict) -> None:
    """Write ``report.json``, ``report.md`` and ``cycles.png`` for ``report`` into ``build_dir``.

    The schema is in this module's docstring. All three are rendered first and written after, so
    a malformed report raises before any file changes.
    """
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ValueError(f"report lacks {', '.join(missing)}")
    build_dir = Path(build_dir)
    files = {
        "report.json": (json.dumps(report, indent=2, default=_json_default) + "\n").encode(),
        "report.md": render_markdown(report).encode(),
        "cycles.png": render_png(report),
    }
    build_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_bytes_atomic(build_dir / name, data)
