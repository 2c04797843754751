"""Target boards: the FPGA part FINN builds for and the resources a design may use.

Why here and not in FINN's tables: the compiler checks that the folded dataflow graph fits
*before* spending an hour in synthesis, and the report compares what the layers need with what
the board has. Both need the raw resource counts, in the units FINN's estimates use (LUTs,
BRAM18 halves, URAMs, DSP slices), next to the part string FINN wants.

BRAM is counted in 18 Kb halves (``bram18``) because FINN's ``bram_estimation`` counts those;
data sheets list 36 Kb blocks, so ``bram18 = 2 * BRAM36``.

The boards are data, in ``hw/boards.json``, shared with the FINN build handover (FINN's board
name, AXI port width, shell flow) and the board runtime (the names PYNQ images report).

The Ultra96 could close timing at 200 MHz for small designs, but 150 MHz is the clock its
PYNQ image and FINN's examples use, and a default that routes is worth more than 33 % on paper.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CompileError

__all__ = ["BOARDS", "CHECKED_RESOURCES", "Board", "budget_dict", "fit_check", "get_board"]


@dataclass(frozen=True)
class Board:
    """One target board: the FINN part string and the resources of that part.

    Frozen because the entries of :data:`BOARDS` are shared by every compile; a caller that
    wants a tighter budget passes ``max_utilisation`` to :func:`fit_check` instead of editing
    the board.
    """

    name: str
    part: str
    lut: int
    ff: int
    bram18: int
    uram: int
    dsp: int
    default_clock_mhz: float
    finn_board: str = ""                       # key of FINN's pynq_part_map
    pynq_board_names: tuple[str, ...] = field(default=(), compare=False)
    axi_width_bits: int = 64                   # native AXI HP port width of the IODMAs
    shell_flow_type: str = "vivado_zynq"


BOARDS_FILE = Path(__file__).resolve().parents[2] / "hw" / "boards.json"


def load_boards(path: Path = BOARDS_FILE) -> dict[str, Board]:
    """The boards of ``hw/boards.json`` (BRAM converted from 36 Kb blocks to 18 Kb halves)."""
    try:
        entries = json.loads(Path(path).read_text())["boards"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise CompileError(f"cannot read the board definitions {path}: {exc}") from exc
    boards = {}
    for name, e in entries.items():
        try:
            boards[name] = Board(name, e["part"], e["lut"], e["ff"], 2 * e["bram36"], e["uram"], e["dsp"],
                                 float(e["default_clock_mhz"]), e["finn_board"], tuple(e["pynq_board_names"]),
                                 int(e["axi_width_bits"]), e["shell_flow_type"])
        except KeyError as exc:
            raise CompileError(f"{path}: board {name!r} lacks {exc}") from exc
    return boards


BOARDS: dict[str, Board] = load_boards()

# The resources FINN estimates per layer, hence the ones a fit check can compare (FINN gives no
# flip-flop estimate, so FF is in the budget for the report but not checked).
CHECKED_RESOURCES: tuple[tuple[str, str], ...] = (
    ("lut", "LUT"),
    ("bram18", "BRAM18"),
    ("uram", "URAM"),
    ("dsp", "DSP"),
)


def _canonical(name: str) -> str:
    """Lower case, separators dropped: ``PYNQ_Z2``, ``pynq-z2`` and ``pynq z2`` all match."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_CANONICAL: dict[str, Board] = {_canonical(key): board for key, board in BOARDS.items()}


def get_board(name: str) -> Board:
    """The board called ``name``, matched case-insensitively and ignoring ``-``/``_``/spaces.

    Raises :class:`CompileError` naming the unknown board and listing the valid ones, because
    the name usually comes straight from the command line.
    """
    board = _BY_CANONICAL.get(_canonical(str(name)))
    if board is None:
        raise CompileError(f"unknown board {name!r}; valid boards: {', '.join(BOARDS)}")
    return board


def _fmt(x: float) -> str:
    """A count with thousands separators; fractions (LUT estimates can have them) get one digit."""
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.1f}"


def fit_check(totals: Mapping[str, float], board: Board, max_utilisation: float = 1.0) -> list[str]:
    """Human-readable violations of ``board``'s budget by ``totals``; empty when the design fits.

    ``totals`` holds the summed estimates under ``lut``, ``bram18``, ``uram`` and ``dsp``.
    ``max_utilisation`` scales every budget (0.85 leaves 15 % for the shell and for routing);
    the default 1.0 checks against the raw part. Each message names the resource, the need, the
    budget and the excess, absolute and relative to the budget, so the user can see which
    folding to loosen and by how much, e.g.
    ``"LUT: needs 61,234, pynq-z2 has 53,200 (over by 8,034, 15.1%)"``.
    """
    if not (isinstance(max_utilisation, (int, float)) and max_utilisation > 0):
        raise ValueError(f"max_utilisation must be a positive number, got {max_utilisation!r}")
    missing = [key for key, _ in CHECKED_RESOURCES if key not in totals]
    if missing:
        raise ValueError(f"totals lacks {', '.join(missing)} (has {', '.join(map(str, totals))})")
    violations = []
    for key, label in CHECKED_RESOURCES:
        need = float(totals[key])
        if math.isnan(need):
            raise ValueError(f"totals[{key!r}] is NaN")
        raw = getattr(board, key)
        budget = raw * max_utilisation
        if need <= budget:
            continue
        if max_utilisation == 1.0:
            has = f"{board.name} has {_fmt(raw)}"
        else:
            has = f"{board.name} allows {_fmt(budget)} ({max_utilisation:.0%} of {_fmt(raw)})"
        over = need - budget
        pct = f"{over / budget:.1%}" if budget > 0 else "the board has none"
        violations.append(f"{label}: needs {_fmt(need)}, {has} (over by {_fmt(over)}, {pct})")
    return violations


def budget_dict(board: Board) -> dict[str, int | str]:
    """The board's budget as plain JSON values, for the ``budget`` entry of report.json."""
    return {
        "name": board.name,
        "part": board.part,
        "lut": board.lut,
        "ff": board.ff,
        "bram18": board.bram18,
        "uram": board.uram,
        "dsp": board.dsp,
    }
