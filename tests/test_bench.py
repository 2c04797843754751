"""The benchmark harness (fpga_gan.bench) on a tiny configuration, and its pure parts.

Speeds are not asserted anywhere: they belong to the machine. What is checked is that one run
writes every file, that the figures are consistent, and that BENCHMARKS.md says nothing that
bench.json does not (published figures aside, which have their own section).
"""

from __future__ import annotations

import json
import re

import pytest

from fpga_gan.bench import BenchConfig, Target, run_bench
from fpga_gan.bench.accel import lanes_per_dsp
from fpga_gan.bench.markdown import PUBLISHED_HEADING
from fpga_gan.bench.published import PUBLISHED
from fpga_gan.bench.targets import evaluate_targets

# A number as a table or a sentence writes it; not a digit inside a name (kv260, k4s2, W4A4, DSP48).
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def _numbers_of(value, numbers: list[float], tokens: set[str]) -> None:
    """Every number of a JSON value, and every number written inside its strings."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        numbers.append(float(value))
    elif isinstance(value, str):
        tokens.update(t.replace(",", "") for t in _NUMBER.findall(value))
    elif isinstance(value, dict):
        for v in value.values():
            _numbers_of(v, numbers, tokens)
    elif isinstance(value, list):
        for v in value:
            _numbers_of(v, numbers, tokens)


def _without_published(markdown: str) -> str:
    start = markdown.index(PUBLISHED_HEADING)
    end = markdown.find("\n## ", start + len(PUBLISHED_HEADING))
    return markdown[:start] + (markdown[end:] if end >= 0 else "")


def _untraced_numbers(markdown: str, bench: dict) -> list[str]:
    """Numbers of the markdown that are no value of bench.json (to the digits shown) nor in its strings."""
    numbers: list[float] = []
    tokens: set[str] = set()
    _numbers_of(bench, numbers, tokens)
    untraced = []
    for token in _NUMBER.findall(_without_published(markdown)):
        plain = token.replace(",", "")
        if plain in tokens:
            continue
        digits = len(plain.split(".")[1]) if "." in plain else 0
        shown = float(plain)
        if not any(abs(v - shown) <= 0.5 * 10 ** -digits + 1e-9 for v in numbers):
            untraced.append(token)
    return untraced


def test_lanes_per_dsp_follows_finn_rtllib_packing():
    assert lanes_per_dsp(2, 4, 4, narrow_weights=True) == 4          # DSP48E2, 4-bit
    assert lanes_per_dsp(1, 4, 4, narrow_weights=True) == 4          # DSP48E1, narrow 4-bit weights
    assert lanes_per_dsp(1, 4, 4, narrow_weights=False) == 3         # DSP48E1, full-range 4-bit weights
    assert lanes_per_dsp(2, 8, 8, narrow_weights=False) == 2         # 8-bit
    assert lanes_per_dsp(3, 8, 8, narrow_weights=False) == 3         # DSP58 INT8 mode


def test_targets_say_met_missed_or_not_measured():
    bench = {
        "accelerators": [{"model": "m", "board": "b", "status": "ok", "clock_mhz": 100.0, "fps": 250.0,
                          "fps_source": "measured: x", "case": "m@b", "message": ""},
                         {"model": "n", "board": "b", "status": "does not fit", "message": "BRAM18: needs more"}],
        "cpu": [{"model": "m", "batch": 1, "ort_vs_brevitas": 3.0, "provenance": {"ort_vs_brevitas": "derived"}}],
        "deconv": [{"model": "m", "case": "m@b", "layer": "l0", "kernel": 4, "stride": 2, "macs_ratio": 3.0,
                    "provenance": {"macs": "counted"}},
                   {"model": "m", "case": "m@b", "layer": "l1", "kernel": 4, "stride": 2, "macs_ratio": 3.8,
                    "provenance": {"macs": "counted"}}],
    }
    rows = evaluate_targets((Target("fps", "accel_fps", 300, "FPS", "m", "b", 100.0),
                             Target("fit", "accel_fps", 1, "FPS", "n", "b"),
                             Target("ort", "cpu_ratio", 2, "x", "m", batch=1),
                             Target("deconv", "deconv_ratio", 3.5, "x", "m")), bench)
    fps, fit, ort, deconv = rows
    assert fps["met"] is False and fps["value"] == 250.0 and fps["shortfall_pct"] == pytest.approx(100 / 6)
    assert fit["met"] is None and "does not fit" in fit["provenance"]
    assert ort["met"] is True and ort["shortfall_pct"] is None
    assert deconv["value"] == 3.0 and deconv["met"] is False and "1 of 2" in deconv["detail"]


def test_bench_harness_on_a_tiny_configuration(tmp_path):
    out = tmp_path / "bench"
    bench = run_bench(BenchConfig.tiny(out))

    saved = json.loads((out / "bench.json").read_text())
    assert saved == bench
    markdown = (out / "BENCHMARKS.md").read_text()
    assert (out / "bench.log").is_file()
    assert len(saved["files"]["charts"]) == 4
    for chart in saved["files"]["charts"]:
        with open(chart, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    (cpu,) = saved["cpu"]
    assert cpu["model"] == "dcgan" and cpu["batch"] == 1 and cpu["repeats"] == 2
    assert min(cpu[k] for k in ("float_twin_eager", "brevitas_eager", "onnxruntime_qcdq")) > 0

    (accel,) = saved["accelerators"]
    assert accel["status"] == "ok" and accel["simulated"] and accel["sim_mismatches"] == 0
    assert accel["fps"] == accel["fps_sim"] > 0 and accel["fps_source"].startswith("measured: RTL simulation")
    assert accel["gops"] == pytest.approx(2 * accel["macs_per_frame"] * accel["fps"] / 1e9)
    assert 0 < accel["gops"] <= accel["bound_gops"]
    assert accel["resources"]["dsp"]["used"] <= accel["resources"]["dsp"]["budget"]

    assert len(saved["deconv"]) == 5                          # the tiny DCGAN's five transposed convolutions
    assert all(r["macs_zero_insertion"] > r["macs_zero_free"] >= r["macs_useful"] > 0 for r in saved["deconv"])

    (tools,) = saved["tools"]
    assert tools["compile_cache"] == "cold" and tools["compile_cold_s"] > 0
    assert tools["verilator_build_source"].startswith("measured") and tools["sim_cycles_per_s"] > 0

    assert [t["met"] is not None for t in saved["targets"]] == [True, True, True]
    assert saved["machine"]["python"] and saved["published"] == json.loads(json.dumps(list(PUBLISHED)))

    # every figure of the markdown comes from bench.json; the published ones have their own section
    assert _untraced_numbers(markdown, saved) == []
    assert _untraced_numbers(markdown + "\nplanted 98,765.4321\n", saved) == ["98,765.4321"]   # the check bites
    published = markdown[markdown.index(PUBLISHED_HEADING):]
    for entry in PUBLISHED:
        assert entry["source"] in published
    for target in saved["targets"]:
        assert target["title"] in markdown
