"""The benchmark harness (fpga_gan.bench) on a tiny configuration, and its pure parts.

Speeds are not asserted anywhere: they belong to the machine. What is checked is that one run
writes every file, that the figures are consistent, and that BENCHMARKS.md says nothing that
bench.json does not (published figures aside, which have their own section).
"""

from __future__ import annotations

import json
import re

import pytest

from click.testing import CliRunner

from fpga_gan.bench import AccelCase, BenchConfig, Target, run_bench
from fpga_gan.bench.accel import deconv_geometry, lanes_per_dsp
from fpga_gan.bench.cli import bench as bench_command
from fpga_gan.bench.cli import parse_case
from fpga_gan.bench.config import DEFAULT_ACCEL_CASES, DEFAULT_TARGETS, case_targets
from fpga_gan.bench.markdown import PUBLISHED_HEADING, _targets
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


def _ok_case(model: str, **overrides) -> dict:
    """An accelerator row of a compiled, simulated case, as accel_row writes one (the fields the targets read)."""
    row = {"case": f"{model}@kv260", "model": model, "board": "kv260", "status": "ok", "message": "",
           "fits": True, "simulated": True, "sim_error": None, "sim_mismatches": 0,
           "cycles_per_frame_sim": 1100, "cycles_per_frame_estimate": 1000,
           "structure": {"partitions": 1, "outside_partition": ["Mul", "Transpose"], "layers": 12,
                         "non_rtl_layers": []},
           "resources": {k: {"used": 1, "budget": 10, "pct": 10.0} for k in ("lut", "bram18", "uram", "dsp")}}
    row.update(overrides)
    return row


def _deconv_row(model: str, layer: str, kernel: int, spent: int, useful: int = 100) -> dict:
    return {"model": model, "case": f"{model}@kv260", "layer": layer, "kernel": kernel, "stride": 2,
            "kernel_shape": [kernel, kernel], "geometry": f"k{kernel}s2", "macs_zero_free": spent,
            "macs_useful": useful, "macs_ratio": 4 * useful / spent, "provenance": {"macs": "counted: x"}}


def test_case_targets_say_met_missed_or_not_measured():
    structure = _ok_case("ok")["structure"]
    accel = [_ok_case("ok"),                                                       # 10% over the estimate
             _ok_case("slow", cycles_per_frame_sim=1200),                          # 20% over
             _ok_case("split", structure={**structure, "partitions": 2, "non_rtl_layers": ["MVAU_hls"],
                                          "outside_partition": ["Tanh", "Transpose"]}),
             _ok_case("big", fits=False, simulated=False, cycles_per_frame_sim=None),
             _ok_case("broken", sim_error="SimError: frame 0 timed out\nmore"),
             {"case": "cyclegan@kv260", "model": "cyclegan", "board": "kv260", "status": "compile error",
              "message": "these nodes cannot be streamed by the RTL layers:\n  Mul_0 (Mul)\n  Tanh_0 (Tanh)"}]
    targets = [t for m in ("ok", "slow", "split", "big", "broken", "cyclegan", "absent")
               for t in case_targets(AccelCase(f"/x/{m}.qonnx.onnx", "kv260"))]
    rows = {t["title"].split("@")[0] + ("/fit" if t["kind"] == "rtl_partition" else "/cycles"): t
            for t in evaluate_targets(tuple(targets), {"accelerators": accel})}

    assert rows["ok/fit"]["met"] is True and rows["ok/fit"]["value"] is True
    assert rows["ok/fit"]["detail"].startswith("1 partition of 12 RTL layers; fits kv260")
    assert rows["ok/cycles"]["met"] is True and rows["ok/cycles"]["value"] == pytest.approx(10.0)
    assert rows["slow/cycles"]["met"] is False and rows["slow/cycles"]["value"] == pytest.approx(20.0)
    assert rows["slow/cycles"]["shortfall_pct"] == pytest.approx(100 / 3)                  # 20% against at most 15%
    split = rows["split/fit"]
    assert split["met"] is False and split["shortfall_pct"] is None
    assert split["detail"] == "2 partitions; not RTL: MVAU_hls; outside the partition: Tanh"   # Transpose is fine
    assert rows["big/fit"]["met"] is False and rows["big/fit"]["detail"] == "does not fit kv260"
    assert rows["big/cycles"]["met"] is None and "not simulated" in rows["big/cycles"]["provenance"]
    assert rows["broken/cycles"]["met"] is None and rows["broken/cycles"]["detail"] == "SimError: frame 0 timed out"
    # a generator that does not compile is a missed target with the compiler's first line, not a crash
    failed = rows["cyclegan/fit"]
    assert failed["met"] is False and failed["value"] is False
    assert failed["detail"] == "compile error: these nodes cannot be streamed by the RTL layers: Mul_0 (Mul) (and 1 more)"
    assert rows["cyclegan/cycles"]["met"] is None and "compile error" in rows["cyclegan/cycles"]["provenance"]
    assert rows["absent/fit"]["met"] is None and rows["absent/cycles"]["met"] is None

    markdown = "\n".join(_targets({"targets": list(rows.values())}))
    assert "| ≤ 15% | met |" in markdown and "| yes | met |" in markdown
    assert "**missed** (20.0%, needed ≤ 15%: 33.3% over)" in markdown


def test_deconv_useful_target_reads_only_layers_with_k_not_a_multiple_of_s():
    useful = Target("useful", "deconv_useful", 1.0, "x", None, compare="==")
    exact = [_deconv_row("cyclegan", "up0", 3, 100), _deconv_row("cyclegan", "up1", 5, 100),
             _deconv_row("dcgan", "d0", 4, 100)]
    (met,) = evaluate_targets((useful,), {"deconv": exact})
    assert met["met"] is True and met["value"] == 1.0 and met["detail"].startswith("2 of 2 layers")
    assert "cyclegan@kv260 up0 k3s2: 1.00x spent / useful, 4.00x zero insertion" in met["detail"]

    wasteful = [*exact, _deconv_row("other", "w0", 3, 400)]           # a zero-padded kernel: 4x the useful MACs
    (missed,) = evaluate_targets((useful,), {"deconv": wasteful})
    assert missed["met"] is False and missed["value"] == 4.0 and missed["shortfall_pct"] == pytest.approx(300)
    assert missed["detail"].startswith("2 of 3 layers")
    (one_model,) = evaluate_targets((Target("u", "deconv_useful", 1.0, "x", "cyclegan", compare="=="),),
                                    {"deconv": wasteful})
    assert one_model["met"] is True

    (none,) = evaluate_targets((useful,), {"deconv": [_deconv_row("dcgan", "d0", 4, 100)]})
    assert none["met"] is None and "k % s != 0" in none["provenance"]
    with pytest.raises(ValueError, match="compare must be one of"):
        Target("t", "accel_fps", 1.0, "FPS", "m", compare="<")


def test_deconv_layer_shapes_name_kernel_stride_padding_and_output_padding():
    assert deconv_geometry([4, 4], 2, [1, 1, 1, 1], [0, 0]) == "k4s2p1"
    assert deconv_geometry([3, 3], 2, [1, 1, 1, 1], [1, 1]) == "k3s2p1op1"
    assert deconv_geometry([5, 5], 2, [2, 2, 2, 2], [1, 1]) == "k5s2p2op1"
    assert deconv_geometry([3, 5], 2, [1, 2, 1, 2], [0, 1]) == "k3x5s2p1,2,1,2op0,1"


def test_case_option_is_checked_and_adds_cases_with_their_targets(tmp_path, monkeypatch):
    mine = tmp_path / "my_gen.qonnx.onnx"
    mine.write_bytes(b"")
    assert parse_case(f"{mine}@kv260") == AccelCase(str(mine), "kv260")
    assert parse_case(f"{mine}@kv260").name == "my_gen@kv260"               # the file's stem names the case
    assert parse_case("dcgan@pynq-z2") == AccelCase("dcgan", "pynq-z2")

    runner = CliRunner()
    for bad, message in ((f"{mine}", "expected MODEL@BOARD"), (f"{mine}@", "expected MODEL@BOARD"),
                         (f"{mine}@kv261", "unknown board 'kv261'"),
                         (f"{tmp_path / 'missing.onnx'}@kv260", "no QONNX file"),
                         ("stylegan@kv260", "unknown model 'stylegan'")):
        result = runner.invoke(bench_command, ["--case", bad])
        assert result.exit_code == 2 and message in result.output, (bad, result.output)

    seen = {}

    def fake_run_bench(cfg):
        seen["cfg"] = cfg
        return {"targets": evaluate_targets(cfg.targets, {}), "files": {"json": "bench.json", "log": "bench.log"},
                "wall_minutes": 0.0}

    monkeypatch.setattr("fpga_gan.bench.runner.run_bench", fake_run_bench)
    result = runner.invoke(bench_command, ["--case", f"{mine}@kv260", "--case", "dcgan@kv260", "--no-markdown"])
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert cfg.accel_cases == (*DEFAULT_ACCEL_CASES, AccelCase(str(mine), "kv260"))   # dcgan@kv260 is a default
    assert cfg.targets[:len(DEFAULT_TARGETS)] == DEFAULT_TARGETS
    assert [t.kind for t in cfg.targets[len(DEFAULT_TARGETS):]] == ["rtl_partition", "sim_vs_estimate"] * 2
    assert "not measured my_gen@kv260: one dataflow partition of RTL layers that fits kv260: — (needed yes)" \
        in " ".join(result.output.split())

    result = runner.invoke(bench_command, ["--case", f"{mine}@kv260", "--no-default-cases", "--no-markdown"])
    assert result.exit_code == 0 and seen["cfg"].accel_cases == (AccelCase(str(mine), "kv260"),)

    clash = tmp_path / "dcgan.onnx"                        # named like the zoo's dcgan@kv260 case
    clash.write_bytes(b"")
    result = runner.invoke(bench_command, ["--case", f"{clash}@kv260"])
    assert result.exit_code == 2 and "two cases are named dcgan@kv260" in result.output


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

    serve = saved["serve"]                                    # the web API's load run
    assert serve["requests"] == 6 and serve["errors"] == 0 and serve["clients"] == 2
    assert 0 < serve["p50_ms"] <= serve["p99_ms"] and serve["requests_per_s"] > 0
    assert set(serve["by_endpoint"]) == {"tryon", "design/edit", "design/sample"}
    assert "## Web API under load" in markdown

    assert [t["met"] is not None for t in saved["targets"]] == [True] * 6
    assert saved["targets"][3]["kind"] == "rtl_partition" and saved["targets"][3]["met"] is True
    assert saved["machine"]["python"] and saved["published"] == json.loads(json.dumps(list(PUBLISHED)))

    # every figure of the markdown comes from bench.json; the published ones have their own section
    assert _untraced_numbers(markdown, saved) == []
    assert _untraced_numbers(markdown + "\nplanted 98,765.4321\n", saved) == ["98,765.4321"]   # the check bites
    published = markdown[markdown.index(PUBLISHED_HEADING):]
    for entry in PUBLISHED:
        assert entry["source"] in published
    for target in saved["targets"]:
        assert target["title"] in markdown
