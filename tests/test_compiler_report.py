"""Board table, fit check and the compile report files (pure Python: no FINN, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fpga_gan.compiler.boards import BOARDS, Board, budget_dict, fit_check, get_board
from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.report import totals_from_nodes, write_report

# ------------------------------------------------------------------------------------------ boards


@pytest.mark.parametrize("spelling", ["pynq-z2", "PYNQ-Z2", "pynq_z2", "Pynq Z2", "pynqz2"])
def test_get_board_spellings(spelling):
    board = get_board(spelling)
    assert board is BOARDS["pynq-z2"]
    assert board.part == "xc7z020clg400-1"
    assert (board.lut, board.ff, board.bram18, board.uram, board.dsp) == (53_200, 106_400, 280, 0, 220)
    assert board.default_clock_mhz == 100.0


def test_board_table():
    assert set(BOARDS) == {"pynq-z2", "ultra96", "zcu104", "kv260"}
    assert get_board("ultra96").default_clock_mhz == 150.0
    assert get_board("ZCU104") == Board("zcu104", "xczu7ev-ffvc1156-2-e", 230_400, 460_800, 624, 96, 1_728, 200.0,
                                        "ZCU104", ("ZCU104",), 128, "vivado_zynq")
    assert get_board("kv260").part == "xck26-sfvc784-2LV-c"
    assert get_board("kv260").bram18 == 288 and get_board("kv260").uram == 64
    for name, board in BOARDS.items():
        assert board.name == name
        # The handover to FINN's builder needs FINN to know the board under that name and part.
        from finn.util.basic import pynq_native_port_width, pynq_part_map

        assert pynq_part_map[board.finn_board] == board.part
        assert pynq_native_port_width[board.finn_board] == board.axi_width_bits


def test_get_board_unknown_names_valid_ones():
    with pytest.raises(CompileError) as info:
        get_board("zedboard")
    msg = str(info.value)
    assert "zedboard" in msg
    for name in BOARDS:
        assert name in msg


def test_fit_check_over_budget():
    board = get_board("pynq-z2")
    totals = {"lut": 61_234, "bram18": 100, "uram": 2, "dsp": 220}
    violations = fit_check(totals, board)
    assert violations[0] == "LUT: needs 61,234, pynq-z2 has 53,200 (over by 8,034, 15.1%)"
    assert len(violations) == 2  # LUT and URAM; DSP at exactly the budget fits
    assert violations[1].startswith("URAM: needs 2, pynq-z2 has 0 (over by 2")


def test_fit_check_fits_and_headroom():
    board = get_board("zcu104")
    totals = {"lut": 200_000, "bram18": 500, "uram": 10, "dsp": 1_000}
    assert fit_check(totals, board) == []
    tight = fit_check(totals, board, max_utilisation=0.85)  # 85% of 230,400 LUTs = 195,840
    assert len(tight) == 1
    assert tight[0].startswith("LUT: needs 200,000, zcu104 allows 195,840 (85% of 230,400) (over by 4,160")


def test_fit_check_bad_input():
    with pytest.raises(ValueError, match="dsp"):
        fit_check({"lut": 1, "bram18": 1, "uram": 0}, get_board("kv260"))
    with pytest.raises(ValueError):
        fit_check({"lut": 1, "bram18": 1, "uram": 0, "dsp": 0}, get_board("kv260"), max_utilisation=0)


def test_budget_dict():
    budget = budget_dict(get_board("ultra96"))
    assert budget == {
        "name": "ultra96",
        "part": "xczu3eg-sbva484-1-i",
        "lut": 70_560,
        "ff": 141_120,
        "bram18": 432,
        "uram": 0,
        "dsp": 360,
    }
    json.dumps(budget)


# ------------------------------------------------------------------------------------------ report


def _nodes():
    return [
        {
            "name": "MVAU_0",
            "op_type": "MVAU_rtl",
            "pe": 4,
            "simd": 8,
            "macs": 409_600,
            "cycles": 12_800,
            "lut": 3_000,
            "bram18": 4,
            "uram": 0,
            "dsp": 8,
        },
        {
            "name": "FMPadding_1",
            "op_type": "FMPadding_rtl",
            "pe": None,
            "simd": 2,
            "macs": None,
            "cycles": 1_200,
            "lut": 150.5,
            "bram18": 0,
            "uram": 0,
            "dsp": 0,
        },
        {
            "name": "MVAU_2",
            "op_type": "MVAU_rtl",
            "pe": 2,
            "simd": 4,
            "macs": 1_638_400,
            "cycles": 204_800,
            "lut": 1_500,
            "bram18": 2,
            "uram": 1,
            "dsp": 4,
        },
        {
            "name": "DepthToSpace_3",
            "op_type": "DepthToSpace_rtl",
            "pe": None,
            "simd": None,
            "macs": None,
            "cycles": 4_096,
            "lut": 80,
            "bram18": 1,
            "uram": 0,
            "dsp": 0,
        },
    ]


def test_totals_from_nodes():
    totals = totals_from_nodes(_nodes(), clock_mhz=100.0)
    assert totals["lut"] == pytest.approx(4_730.5)
    assert (totals["bram18"], totals["uram"], totals["dsp"]) == (7, 1, 12)
    assert totals["cycles_per_frame"] == 204_800  # the bottleneck, not the sum
    assert totals["fps"] == pytest.approx(100e6 / 204_800)


def test_totals_from_nodes_errors():
    with pytest.raises(ValueError):
        totals_from_nodes([], 100.0)
    with pytest.raises(ValueError):
        totals_from_nodes(_nodes(), 0.0)
    bad = _nodes()
    bad[1]["lut"] = None
    with pytest.raises(ValueError, match="FMPadding_1"):
        totals_from_nodes(bad, 100.0)


def _report():
    nodes = _nodes()
    return {
        "model": "dcgan-tiny",
        "board": "pynq-z2",
        "clock_mhz": 100.0,
        "nodes": nodes,
        "totals": totals_from_nodes(nodes, 100.0),
        "budget": budget_dict(get_board("pynq-z2")),
        "deconv": [
            {
                "name": "ConvTranspose_0",
                "macs_zero_free": 1_638_400,
                "macs_zero_insertion": 6_553_600,
                "cycles_zero_free": 204_800,
                "cycles_zero_insertion": 819_200,
            }
        ],
        "verification": [
            {"stage": "python", "bit_exact": True, "inputs": 4},
            {"stage": "rtlsim", "bit_exact": False, "inputs": 1},
        ],
        "stages": [{"stage": "lower", "seconds": 0.5}, {"stage": "hls", "seconds": 12.25}],
    }


def test_write_report(tmp_path):
    report = _report()
    out = tmp_path / "build" / "dcgan"
    write_report(out, report)
    assert sorted(p.name for p in out.iterdir()) == ["cycles.png", "report.json", "report.md"]

    assert json.loads((out / "report.json").read_text()) == report

    md = (out / "report.md").read_text()
    for node in report["nodes"]:
        assert node["name"] in md
    assert "MVAU_2` ◀ bottleneck" in md
    assert "ConvTranspose_0" in md and "4.00×" in md
    assert "rtlsim | **NO**" in md
    assert "pynq-z2" in md and "53,200" in md

    with Image.open(out / "cycles.png") as img:
        img.verify()
    with Image.open(out / "cycles.png") as img:
        assert img.format == "PNG" and img.width > 100 and img.height > 100


def test_write_report_numpy_and_overwrite(tmp_path):
    report = _report()
    report["nodes"][0]["cycles"] = np.int64(12_800)
    report["totals"]["lut"] = np.float64(4_730.5)
    write_report(tmp_path, report)
    first = (tmp_path / "report.json").read_text()
    assert json.loads(first)["nodes"][0]["cycles"] == 12_800
    report["model"] = "renamed"
    del report["deconv"], report["verification"], report["stages"]
    write_report(tmp_path, report)  # replaces the previous files; no temp files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cycles.png", "report.json", "report.md"]
    md = (tmp_path / "report.md").read_text()
    assert "renamed" in md and "No transposed convolutions." in md and "Not verified." in md


def test_write_report_missing_key_writes_nothing(tmp_path):
    report = _report()
    del report["totals"]
    with pytest.raises(ValueError, match="totals"):
        write_report(tmp_path / "out", report)
    assert not (tmp_path / "out").exists()
