"""A build directory is self-contained: copied or moved it still works, and a copy never writes to
the original; a truncated or edited stage file is noticed and that stage is run again."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fpga_gan.compiler.pipeline import STAGES, CompileConfig, compile_model, execute_golden, partition_file


def _compile(model: Path, out: Path, lines: list[str] | None = None, **kw):
    return compile_model(CompileConfig(model=str(model), board="ultra96", out_dir=out,
                                       log=(lines.append if lines is not None else lambda _: None), **kw))


def _digests(build: Path) -> dict[str, str]:
    return {p.relative_to(build).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(build.rglob("*")) if p.is_file() and "finn" not in p.relative_to(build).parts[:1]}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, Path]:
    """(the QONNX source, a finished build of it) -- copied by each test, never changed."""
    from .test_compiler import export_tiny_unet

    root = tmp_path_factory.mktemp("build_dir")
    source = export_tiny_unet(root / "tiny_unet.onnx")
    _compile(source, root / "build")
    return source, root / "build"


def _final_parent(build: Path):
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(str(build / f"{len(STAGES) - 1:02d}_{STAGES[-1]}.onnx"))


def test_stage_files_name_the_partition_relative_to_the_build_dir(compiled):
    from qonnx.custom_op.registry import getCustomOp

    _, build = compiled
    names = set()
    for index, stage in enumerate(STAGES):
        from qonnx.core.modelwrapper import ModelWrapper

        model = ModelWrapper(str(build / f"{index:02d}_{stage}.onnx"))
        for node in model.get_nodes_by_op_type("StreamingDataflowPartition"):
            stored = getCustomOp(node).get_nodeattr("model")
            assert not Path(stored).is_absolute() and stored.startswith("partition/")
            names.add(stored)
    # one file per stage that changes the partition: a later stage never rewrites an earlier one's
    assert names == {"partition/05_dataflow_partition.onnx", "partition/06_specialize.onnx",
                     "partition/07_folding.onnx"}


def test_recompiling_a_copy_leaves_the_original_unchanged(compiled, tmp_path):
    source, original = compiled
    before = _digests(original)
    report = json.loads((original / "report.json").read_text())
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    lines: list[str] = []
    result = _compile(source, copy, lines, target_fps=report["totals"]["fps"] / 8)
    assert any("folding" in line and "reused" not in line for line in lines)       # the folding was redone
    assert result.report["totals"]["fps"] != report["totals"]["fps"]
    assert _digests(original) == before                                              # original untouched
    assert json.loads((original / "report.json").read_text())["totals"] == report["totals"]
    assert partition_file(_final_parent(copy), copy).is_relative_to(copy)


def test_a_moved_build_dir_resumes_and_simulates(compiled, tmp_path):
    from fpga_gan.sim.run import simulate

    source, original = compiled
    moved = tmp_path / "elsewhere" / "build"
    shutil.copytree(original, tmp_path / "build")
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "build", moved)
    lines: list[str] = []
    _compile(source, moved, lines)
    assert sum("reused" in line for line in lines) == len(STAGES) - 1                # all but the estimates
    codes, expected = np.load(moved / "verify_input.npy"), np.load(moved / "verify_expected.npy")
    assert np.array_equal(execute_golden(_final_parent(moved), codes, moved), expected)
    report = simulate(moved, frames=2, backpressure=0.0, layers=2, log=lambda _: None)
    assert report["mismatches"] == 0


@pytest.mark.parametrize("victim", ["03_streamline.onnx", "partition/07_folding.onnx"])
def test_a_truncated_stage_file_is_run_again(compiled, tmp_path, victim):
    source, original = compiled
    build = tmp_path / "build"
    shutil.copytree(original, build)
    data = (build / victim).read_bytes()
    (build / victim).write_bytes(data[: len(data) // 2])
    lines: list[str] = []
    result = _compile(source, build, lines)
    stage = "streamline" if victim.startswith("03") else "folding"
    rerun = [line for line in lines if stage in line]
    assert rerun and "reused" not in rerun[0] and "bit-exact: yes" in rerun[0]
    assert (build / victim).read_bytes() != data[: len(data) // 2]
    assert all(s["bit_exact"] for s in result.report["verification"])
