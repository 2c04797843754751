"""`make bitstream`, `make finn-build` and `make deploy` on a machine without Vivado.

What can run here runs for real: the compile, the FIFO sizing in Verilator, the FINN handover
(validated with finn-plus's own DataflowBuildConfig, and its custom step executed), the
artifact manifest writer, the deploy tarball in a numpy 1.26 environment. Vivado itself is the
one boundary: the `vivado`-marked test needs it and is skipped here. The ``.bit``/``.hwh`` used
to exercise the artifact writer are placeholder bytes, named as such, never a bitstream.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fpga_gan._files import MARKER_NAME
from fpga_gan.bitstream.vivado import SUPPORTED_VIVADO, VivadoMissing, find_vivado
from fpga_gan.cli import main

REPO = Path(__file__).resolve().parents[1]
BOARD_VENV_PYTHON = REPO / ".venv-board" / "bin" / "python"
PLACEHOLDER = b"fpga_gan test placeholder: NOT a bitstream\n"


def _quiet(_message: str) -> None:
    pass


def _schema_validate(manifest: dict) -> None:
    import jsonschema

    schema = json.loads((REPO / "bitstreams" / "manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)


@pytest.fixture(scope="module")
def no_vivado_run(tiny_unet_build, tmp_path_factory):
    """`fpga-gan bitstream` of the small U-Net with no Vivado in the environment."""
    build, _ = tiny_unet_build
    out = tmp_path_factory.mktemp("bitstreams")
    env = {k: v for k, v in os.environ.items() if k != "XILINX_VIVADO"}
    source = json.loads((build / "state.json").read_text())["source"]
    result = CliRunner().invoke(main, ["bitstream", source, "--board", "ultra96",
                                       "--build-dir", str(build), "--out", str(out)], env=env,
                                catch_exceptions=False)
    return build, out, result


def test_bitstream_without_vivado_writes_the_vivado_free_outputs_then_fails_clearly(no_vivado_run):
    build, out, result = no_vivado_run
    assert result.exit_code != 0
    message = result.output
    assert "XILINX_VIVADO is not set" in message
    assert all(version in message for version in SUPPORTED_VIVADO)
    # everything before Vivado is written and complete
    assert json.loads((build / "state.json").read_text())["complete"]
    design = json.loads((build / "rtl" / "design.json").read_text())
    assert design["real_fifos"] and design["layers"] is None
    handover = build / "finn-build"
    for name in ("model.onnx", "dataflow_build_config.json", "folding_config.json", "fifo_config.json",
                 "custom_steps.py", "README.md"):
        assert (handover / name).is_file(), name
    # and no artifact that could look finished
    assert not out.exists() or not any(out.iterdir())


def test_a_qonnx_file_from_outside_gets_a_cpu_artifact_matching_the_compiled_model(no_vivado_run):
    """The small U-Net came as a bare QONNX file: its model.json and QCDQ graph are derived from
    the graph, and the cpu backend then gives the codes of the model the compiler checked."""
    from fpga_gan.runtime import Accelerator

    build, _, _ = no_vivado_run
    codes = np.load(build / "verify_input.npy")
    expected = np.load(build / "verify_expected.npy")
    with Accelerator.open(build, backend="cpu") as acc:
        got = acc.run(codes.astype(acc.input_dtype))
        assert np.array_equal(got, np.round(expected / acc.output_spec.scale).astype(np.int64))


def _finn_step_names() -> set[str]:
    """FINN's registered build steps, read from its source (the module needs Vivado to import)."""
    import finn.builder

    source = Path(finn.builder.__file__).with_name("build_dataflow_steps.py").read_text()
    return {node.name for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("step_")}


def test_finn_build_directory_validates_against_finn_plus_and_its_custom_step_reproduces_the_design(
        no_vivado_run, tmp_path, monkeypatch):
    from finn.builder.build_dataflow_config import DataflowBuildConfig, ShellFlowType
    from finn.transformation.general import ApplyConfig
    from qonnx.core.modelwrapper import ModelWrapper

    from fpga_gan.bitstream.finn_build import folded_partition, folding_config

    build, _, _ = no_vivado_run
    handover = build / "finn-build"
    cfg = DataflowBuildConfig.from_json((handover / "dataflow_build_config.json").read_text())
    assert cfg.board == "Ultra96-V2" and cfg.fpga_part == "xczu3eg-sbva484-1-i"
    assert cfg.shell_flow_type == ShellFlowType.VIVADO_ZYNQ and cfg.auto_fifo_depths is False
    finn_steps = _finn_step_names()
    custom = [s for s in cfg.steps if s.startswith("custom_steps.")]
    assert custom and all(s in finn_steps for s in cfg.steps if s not in custom)
    # FINN imports custom_steps from the config's directory; run its step as FINN would
    monkeypatch.syspath_prepend(str(handover))
    monkeypatch.chdir(handover)
    sys.modules.pop("custom_steps", None)
    import custom_steps

    cfg.output_dir = str(tmp_path / "finn_output")
    partition = custom_steps.step_fpga_gan_frontend(ModelWrapper(str(handover / "model.onnx")), cfg)
    assert (tmp_path / "finn_output" / "intermediate_models" / "dataflow_parent.onnx").is_file()
    partition = partition.transform(ApplyConfig(json.loads((handover / "folding_config.json").read_text())))
    assert folding_config(partition) == folding_config(folded_partition(build))
    # every FIFO FINN will insert has a depth from our simulation
    fifos = json.loads((handover / "fifo_config.json").read_text())["fifo_depths"]
    design = json.loads((build / "rtl" / "design.json").read_text())
    assert sorted(fifos.values()) == sorted(design["fifo_depths"].values())


def test_vivado_detection_names_what_is_missing(tmp_path):
    with pytest.raises(VivadoMissing, match="XILINX_VIVADO is not set"):
        find_vivado({})
    with pytest.raises(VivadoMissing, match="has no bin/vivado"):
        find_vivado({"XILINX_VIVADO": str(tmp_path / "nowhere")})
    for version, ok in (("2023.1", False), ("2024.2", True), ("2022.2", True)):
        root = tmp_path / "Xilinx" / "Vivado" / version
        (root / "bin").mkdir(parents=True)
        (root / "bin" / "vivado").write_text("#!/bin/sh\n# test placeholder, not Vivado\n")
        if ok:
            assert find_vivado({"XILINX_VIVADO": str(root)}).version == version
        else:
            with pytest.raises(VivadoMissing, match=f"Vivado {version}; finn-plus supports Vivado 2022.2 or 2024.2"):
                find_vivado({"XILINX_VIVADO": str(root)})


def test_fifo_memory_is_counted_against_the_board(no_vivado_run):
    from fpga_gan.bitstream.build import _bram18_for, fifo_memory
    from fpga_gan.compiler.boards import get_board
    from fpga_gan.sim.rtl import RtlDesign

    assert _bram18_for(1024, 18) == 1 and _bram18_for(4096, 4) == 1 and _bram18_for(2048, 36) == 4
    build, _, _ = no_vivado_run
    design = RtlDesign.load(build / "rtl")
    memory = fifo_memory(design, get_board("ultra96"))
    assert memory["uram"] == 0 and memory["bram18"] >= 1      # the skip FIFO does not fit in LUTs


@pytest.fixture(scope="module")
def placeholder_artifact(no_vivado_run, tmp_path_factory) -> Path:
    """The artifact writer run on the real plan, with placeholder bytes where FINN's .bit/.hwh go."""
    from fpga_gan.bitstream.build import BitstreamPlan, collect_artifact
    from fpga_gan.compiler.boards import get_board

    build, _, _ = no_vivado_run
    report = json.loads((build / "report.json").read_text())
    fake = tmp_path_factory.mktemp("finn_output")
    (fake / "finn-accel.bit").write_bytes(PLACEHOLDER)
    (fake / "finn-accel.hwh").write_bytes(PLACEHOLDER)
    plan = BitstreamPlan(build, build / "finn-build", "tiny_unet-ultra96", get_board("ultra96"), report["totals"])
    return collect_artifact(plan, fake / "finn-accel.bit", fake / "finn-accel.hwh",
                            tmp_path_factory.mktemp("bitstreams") / plan.name, "2024.2")


def test_manifest_matches_the_schema_and_the_runtime_refuses_tampering(placeholder_artifact, tmp_path):
    from fpga_gan.runtime import ArtifactError
    from fpga_gan.runtime.manifest import Manifest

    manifest = json.loads((placeholder_artifact / "manifest.json").read_text())
    _schema_validate(manifest)
    assert manifest["bitstream"] == "tiny_unet-ultra96.bit" and manifest["hwh"] == "tiny_unet-ultra96.hwh"
    assert set(manifest["files"]) == {p.name for p in placeholder_artifact.iterdir()} - {"manifest.json", MARKER_NAME}
    assert manifest["packing"]["input"]["shape_nhwc"][-1] == manifest["input"]["shape"][1]
    Manifest.load(placeholder_artifact).verify_files()
    Manifest.load(placeholder_artifact).check_board("Ultra96V2")
    with pytest.raises(ArtifactError, match="Pynq-Z2"):
        Manifest.load(placeholder_artifact).check_board("Pynq-Z2")
    tampered = tmp_path / "tampered"                  # a copy: the artifact is shared with the deploy test
    shutil.copytree(placeholder_artifact, tampered)
    (tampered / manifest["bitstream"]).write_bytes(PLACEHOLDER.replace(b"NOT", b"not"))
    with pytest.raises(ArtifactError, match="sha256"):
        Manifest.load(tampered).verify_files()


def test_artifact_and_finn_build_replace_only_directories_they_wrote(no_vivado_run, placeholder_artifact, tmp_path):
    """`make bitstream` and `finn-build` write into directories a user names: a rerun replaces our own
    output, never a directory it did not make."""
    from fpga_gan._files import NotOursError
    from fpga_gan.bitstream.build import BitstreamPlan, collect_artifact
    from fpga_gan.bitstream.finn_build import write_finn_build
    from fpga_gan.compiler.boards import get_board

    build, _, _ = no_vivado_run
    report = json.loads((build / "report.json").read_text())
    plan = BitstreamPlan(build, build / "finn-build", "tiny_unet-ultra96", get_board("ultra96"), report["totals"])
    bit, hwh = placeholder_artifact / "tiny_unet-ultra96.bit", placeholder_artifact / "tiny_unet-ultra96.hwh"
    for target in (tmp_path / "thesis", tmp_path / "notes"):
        target.mkdir()
        (target / "chapter1.tex").write_text("precious")
    with pytest.raises(NotOursError, match="no .fpga_gan marker"):
        collect_artifact(plan, bit, hwh, tmp_path / "thesis", "2024.2")
    with pytest.raises(NotOursError, match="no .fpga_gan marker"):
        write_finn_build(build, tmp_path / "notes")
    for target in (tmp_path / "thesis", tmp_path / "notes"):
        assert [p.name for p in target.iterdir()] == ["chapter1.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "thesis"], "no partial directory left"
    again = collect_artifact(plan, bit, hwh, tmp_path / "ours", "2024.2")      # ours: replaced on a rerun
    assert collect_artifact(plan, bit, hwh, again, "2024.2") == again and (again / "manifest.json").is_file()


def test_deploy_needs_a_bitstream_or_says_cpu_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["deploy", "dcgan", "--board", "kv260"])
    assert result.exit_code != 0
    assert "make bitstream MODEL=dcgan BOARD=kv260" in result.output and "--cpu-only" in result.output
    assert not (tmp_path / "dist" / "dcgan-kv260.tar.gz").exists()


@pytest.mark.skipif(not BOARD_VENV_PYTHON.is_file(), reason="make install creates .venv-board (numpy 1.26)")
def test_deploy_tarball_runs_the_cpu_backend_with_numpy_1_26(tmp_path, zoo_artifacts):
    from fpga_gan.bitstream.deploy import make_deploy

    tarball = make_deploy("dcgan", "pynq-z2", artifact=zoo_artifacts["dcgan"], cpu_only=True, samples=4,
                          out_dir=tmp_path / "dist", log=_quiet)
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        assert not any(n.endswith((".pt", ".pyc")) or "/compiler/" in n or "/models/" in n for n in names)
        tar.extractall(tmp_path / "board", filter="data")
    root = tmp_path / "board" / "dcgan-pynq-z2"
    manifest = json.loads((root / "artifact" / "manifest.json").read_text())
    _schema_validate(manifest)
    assert manifest["bitstream"] is None and "CPU-only" in (root / "README.md").read_text()
    script = ("import sys, numpy as np\n"
              "from fpga_gan.runtime import Accelerator\n"
              "assert 'torch' not in sys.modules and 'finn' not in sys.modules\n"
              "with Accelerator.open('artifact', backend='auto') as acc:\n"
              "    out = acc.run(np.load('samples/inputs.npy'))\n"
              "    assert acc.backend_name == 'cpu', acc.backend_name\n"
              "assert np.array_equal(out, np.load('samples/expected.npy'))\n"
              "print(np.__version__)\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)}
    run = subprocess.run([str(BOARD_VENV_PYTHON), "-c", script], cwd=root, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith("1.26")


def test_deploy_of_a_bitstream_artifact_packs_the_overlay(placeholder_artifact, tmp_path):
    from fpga_gan.bitstream.deploy import make_deploy

    tarball = make_deploy("tiny_unet", "ultra96", artifact=placeholder_artifact, samples=2,
                          out_dir=tmp_path, log=_quiet)
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        readme = tar.extractfile("tiny_unet-ultra96/README.md").read().decode()
    assert {"tiny_unet-ultra96/artifact/tiny_unet-ultra96.bit", "tiny_unet-ultra96/artifact/tiny_unet-ultra96.hwh",
            "tiny_unet-ultra96/samples/inputs.npy"} <= names
    assert "fpga_gan.runtime.selftest artifact" in readme


@pytest.mark.vivado
@pytest.mark.skipif(shutil.which("vivado") is None or "XILINX_VIVADO" not in os.environ,
                    reason="needs Vivado 2022.2 or 2024.2")
def test_bitstream_with_vivado_builds_the_artifact(tiny_unet_build, tmp_path):
    from fpga_gan.bitstream.build import build_bitstream
    from fpga_gan.compiler.pipeline import CompileConfig
    from fpga_gan.runtime.manifest import Manifest

    build, _ = tiny_unet_build
    source = json.loads((build / "state.json").read_text())["source"]
    artifact = build_bitstream(CompileConfig(model=source, board="ultra96", out_dir=build, log=_quiet),
                               out_root=tmp_path)
    Manifest.load(artifact).verify_files()
    assert np.load is not None and (artifact / "tiny_unet-ultra96.bit").stat().st_size > 1_000_000
