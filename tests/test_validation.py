"""Bad options and config values are refused before any work, with one line naming the problem."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fpga_gan.cli import main
from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.pipeline import CompileConfig, compile_model, partition_file


def _quiet(_message: str) -> None:
    pass


@pytest.mark.parametrize("args, needle", [
    (["compile", "dcgan", "--board", "kv260", "--clock-mhz", "0"], "--clock-mhz"),
    (["compile", "dcgan", "--board", "kv260", "--clock-mhz", "nan"], "--clock-mhz"),
    (["compile", "dcgan", "--board", "kv260", "--clock-mhz", "inf"], "--clock-mhz"),
    (["compile", "dcgan", "--board", "kv260", "--clock-mhz", "5000"], "--clock-mhz 5000"),
    (["compile", "dcgan", "--board", "kv260", "--target-fps", "-3"], "--target-fps"),
    (["compile", "dcgan", "--board", "zedboard"], "unknown board 'zedboard'"),
    (["finn-build", "dcgan", "--board", "kv260", "--clock-mhz", "0"], "--clock-mhz"),
    (["bitstream", "dcgan", "--board", "kv260", "--folding", "no-such-file.json"], "no-such-file.json"),
    (["train", "dcgan", "--out", "run", "--batch", "0"], "--batch"),
    (["train", "dcgan", "--out", "run", "--lr", "nan"], "--lr"),
    (["train", "tryon", "--data", ".", "--out", "run", "--widths", "abc"], "--widths"),
    (["data", "make", "--out", "d", "--size", "100000x100000"], "too large"),
    (["design", "sample", "-o", "."], "is a directory"),
    (["design", "sample", "-o", "grid.png", "--set", "kind=jumper"], "choose one of"),
    (["design", "edit", "--cloth", "x.png", "-o", "e.png", "--set", "shine=1"], "unknown attribute 'shine'"),
    (["design", "edit", "--cloth", "x.png", "-o", "e.png", "--set", "colour=#aa3300"], "garment image not found"),
    (["design", "edit", "--cloth", "x.png", "-o", "e.png"], "nothing to edit"),
    (["train", "editor", "--data", ".", "--out", "run"], "not an edit data set"),
    (["design", "sample", "-o", "grid.xyz"], "unknown image extension"),
])
def test_bad_cli_options_exit_2_with_one_line(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)                  # no traceback
    last = result.output.strip().splitlines()[-1]
    assert needle in last and "Traceback" not in result.output
    assert not (tmp_path / "build").exists() and not (tmp_path / "run").exists()   # nothing started


@pytest.mark.parametrize("field, value", [("clock_mhz", 0), ("clock_mhz", math.nan), ("clock_mhz", math.inf),
                                          ("target_fps", 0.0), ("target_fps", -1), ("target_fps", math.nan),
                                          ("seed", -1), ("mvau_wwidth_max", 0), ("clock_mhz", "fast")])
def test_compile_config_refuses_bad_values(field, value, tmp_path):
    with pytest.raises(CompileError, match="must be"):
        CompileConfig(model="dcgan", board="kv260", out_dir=tmp_path / "b", log=_quiet, **{field: value})
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("config, field, value", [
    ("tryon", "batch", 0), ("tryon", "steps", -5), ("tryon", "lr", math.nan), ("tryon", "lr", math.inf),
    ("tryon", "l1_weight", -1.0), ("tryon", "widths", (16, 32)), ("tryon", "act_bits", 0),
    ("dcgan", "batch", 0), ("dcgan", "nz", 0), ("dcgan", "lr_d", -2e-4), ("dcgan", "weight_bits", 33),
    ("dcgan", "kl_weight", math.nan),
])
def test_training_configs_refuse_bad_values_before_any_work(config, field, value, tmp_path):
    """The Python API checks what the CLI checks: a config built in a notebook with batch 0 must not
    train a NaN generator."""
    from fpga_gan.errors import UserError
    from fpga_gan.train.dcgan import DCGANTrainConfig
    from fpga_gan.train.tryon import TryOnTrainConfig

    make = {"tryon": lambda **kw: TryOnTrainConfig(data=str(tmp_path / "data"), out=str(tmp_path / "run"), **kw),
            "dcgan": lambda **kw: DCGANTrainConfig(out=str(tmp_path / "run"), **kw)}[config]
    make()                                                         # the defaults are valid
    with pytest.raises(UserError, match=field):
        make(**{field: value})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, needle", [
    ("[1, 2]", "must be a JSON object"),
    ('{"MVAU_rtl_0": [3]}', "must map attribute names"),
    ('{"Defaults": {"PE": 3}}', "Defaults 'PE'"),
    ("{not json", "not valid JSON"),
])
def test_folding_file_shape_is_checked_before_any_stage(content, needle, tmp_path):
    folding = tmp_path / "folding.json"
    folding.write_text(content)
    with pytest.raises(CompileError, match=needle):
        CompileConfig(model="dcgan", board="kv260", folding_file=folding, out_dir=tmp_path / "b", log=_quiet)


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "b").write_text("x")
    with pytest.raises(CompileError, match="not a directory"):
        CompileConfig(model="dcgan", board="kv260", out_dir=tmp_path / "b", log=_quiet)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory) -> tuple[Path, Path]:
    from .test_compiler import export_tiny_unet

    root = tmp_path_factory.mktemp("validation")
    source = export_tiny_unet(root / "tiny_unet.onnx")
    compile_model(CompileConfig(model=str(source), board="ultra96", out_dir=root / "build", log=_quiet))
    return source, root / "build"


@pytest.mark.parametrize("folding, node", [
    ({"Defaults": {"PE": [3, ["MVAU_rtl"]]}}, "MVAU_rtl_1 (MVAU_rtl)"),     # MH = 10: PE 3 cannot fold it
    ({"MVAU_rtl_1": {"PE": 3}}, "MVAU_rtl_1 (MVAU_rtl)"),
    ({"MVAU_rtl_0": {"PE": 2, "colour": 1}}, "no attribute 'colour'"),
    ({"MVAU_rtl_99": {"PE": 1}}, "'MVAU_rtl_99' does not exist"),
])
def test_folding_with_a_pe_that_fits_no_layer_fails_at_the_folding_stage(folding, node, tiny_build, tmp_path):
    source, original = tiny_build
    build = tmp_path / "build"
    shutil.copytree(original, build)
    path = tmp_path / "folding.json"
    path.write_text(json.dumps(folding))
    with pytest.raises(CompileError, match="folding file") as err:
        compile_model(CompileConfig(model=str(source), board="ultra96", folding_file=path, out_dir=build,
                                    log=_quiet))
    assert node in str(err.value)
    state = json.loads((build / "state.json").read_text())
    assert state["failed_stage"] == "folding" and state["complete"] is False


@pytest.mark.parametrize("scale", [0, float("nan"), -0.5, "x"])
def test_artifact_with_a_bad_output_scale_is_refused_on_load(scale, tmp_path):
    from fpga_gan.export.artifact import tensor_spec
    from fpga_gan.runtime import Accelerator, ArtifactError

    spec = {"schema_version": 1, "model": "toy", "files": {},
            "inputs": [tensor_spec("global_in", (1, 3, 4, 4), 1 / 256, 8, False, with_range=True)],
            "outputs": [tensor_spec("global_out", (1, 3, 4, 4), 0.25, 8, True)]}
    spec["outputs"][0]["scale"] = scale
    (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="scale|field"):
        Accelerator.open(tmp_path, backend="cpu")


def test_artifact_model_json_that_is_a_list_is_refused(tmp_path):
    from fpga_gan.runtime import Accelerator, ArtifactError

    (tmp_path / "model.json").write_text("[]")
    with pytest.raises(ArtifactError, match="JSON object"):
        Accelerator.open(tmp_path, backend="cpu")


def test_a_finn_check_failing_in_rtl_generation_names_the_node(tiny_build, tmp_path):
    """FINN asserts in its code generation as it does in the compile stages: a folding that does not
    divide a layer (here set by hand in a copied build's partition) reaches the user as a
    CompileError naming the stage, the node and FINN's check, not as a bare AssertionError."""
    from qonnx.custom_op.registry import getCustomOp

    from fpga_gan.sim.rtl import partition_model
    from fpga_gan.sim.run import design_for

    build = tmp_path / "build"
    shutil.copytree(tiny_build[1], build)
    parent, model, _ = partition_model(build)
    path = partition_file(parent, build)
    mvau = next(n for n in model.graph.node if n.op_type.startswith("MVAU"))
    channels = getCustomOp(mvau).get_nodeattr("MH")
    pe = next(p for p in range(2, channels + 2) if channels % p)
    getCustomOp(mvau).set_nodeattr("PE", pe)
    model.save(str(path))
    with pytest.raises(CompileError, match=rf"stage rtl_generation failed at .*{mvau.name}"):
        design_for(build)
