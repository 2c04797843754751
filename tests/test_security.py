"""Untrusted files never run code, never make us write or read outside their directory, and an
integrity failure stops instead of falling back (issue 13, the acceptance tests).

Each test builds the hostile input for real (a pickle payload, a model.json naming ``../../x``, a
graph altered after its manifest was written, a symlink in an artifact) and goes through the
entry point a user would use. Every one of them failed before the fix: the payload ran, the file
two levels up was overwritten, the cpu backend ran the tampered graph, the tarball held the link.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fpga_gan.cli import main
from fpga_gan.runtime import Accelerator, ArtifactError
from fpga_gan.runtime.accelerator import IntegrityError

from ._hostile import BOARD_NAME, Payload, board_artifact, payload_checkpoint, tamper_onnx

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str):
    """The CLI in-process; a user error exits 2 and prints no traceback."""
    result = CliRunner().invoke(main, list(args))
    assert not (result.exception and not isinstance(result.exception, SystemExit)), \
        f"traceback for {args}: {result.exception!r}"
    assert "Traceback" not in result.output
    return result


# -- checkpoints -----------------------------------------------------------------------------

def test_the_payload_is_real(tmp_path):
    """The hostile checkpoint does run code under a plain (unsafe) torch.load: the tests below
    would fail if the loaders still unpickled arbitrary objects."""
    import torch

    marker = tmp_path / "ran"
    torch.load(payload_checkpoint(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.read_text() == "payload ran"


def test_export_of_a_payload_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    evil = payload_checkpoint(tmp_path / "evil.pt", marker)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "fpga_gan.cli", "export", str(evil), "-o", str(out),
                           "--check", "0"], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert not marker.exists(), "the pickle payload ran"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refusing to load weights file" in proc.stderr and "could run code" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


@pytest.mark.parametrize("working", [True, False], ids=["inside-a-real-checkpoint", "bare"])
def test_train_init_from_a_payload_checkpoint_runs_nothing(tmp_path, working):
    marker = tmp_path / "ran"
    evil = payload_checkpoint(tmp_path / "evil.pt", marker, working=working)
    result = _cli("train", "dcgan", "--out", str(tmp_path / "run"), "--steps", "1", "--garments", "8",
                  "--batch", "2", "--ngf", "32", "--init-from", str(evil))
    assert not marker.exists(), "the pickle payload ran"
    assert result.exit_code == 2 and "refusing to load" in result.output
    assert not (tmp_path / "run" / "generator.pt").exists()


def test_train_resume_from_a_payload_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    run.mkdir()
    import torch

    torch.save({"generator": {}, "step": Payload(marker)}, run / "checkpoint.pt")
    result = _cli("train", "dcgan", "--out", str(run), "--steps", "1", "--garments", "8", "--batch", "2",
                  "--resume")
    assert not marker.exists(), "the pickle payload ran"
    assert result.exit_code == 2 and "refusing to load --resume checkpoint" in result.output
    assert not (run / "generator.pt").exists()


def test_shipped_weights_and_training_checkpoints_load_without_an_allow_list(tmp_path):
    """weights_only=True needs no extra globals for what we save: the zoo and a resumable run."""
    from fpga_gan.models.zoo import ZOO, load_checkpoint, load_zoo_model

    for name in ZOO:
        load_zoo_model(name)
        load_zoo_model(name, float_twin=True)
    result = _cli("train", "dcgan", "--out", str(tmp_path / "run"), "--steps", "2", "--garments", "8",
                  "--batch", "2", "--ngf", "4", "--nz", "8")
    assert result.exit_code == 0, result.output
    blob = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert {"generator", "opt_g", "rng", "torch_rng", "config"} <= set(blob)
    again = _cli("train", "dcgan", "--out", str(tmp_path / "run"), "--steps", "3", "--garments", "8",
                 "--batch", "2", "--ngf", "4", "--nz", "8", "--resume")
    assert again.exit_code == 0, again.output


# -- model.json names ------------------------------------------------------------------------

def test_compile_never_writes_outside_its_build_dir(tmp_path):
    """A model.json beside the QONNX file naming ``../../x``: before, compile copied
    ``src/../../x`` over ``build/../../x``, a file two levels above the build directory."""
    from fpga_gan.compiler.errors import CompileError
    from fpga_gan.compiler.pipeline import _copy_artifact

    src, build = tmp_path / "p" / "q" / "src", tmp_path / "r" / "s" / "build"
    src.mkdir(parents=True)
    build.mkdir(parents=True)
    (tmp_path / "p" / "x").write_text("attacker")
    victim = tmp_path / "r" / "x"
    victim.write_text("precious")
    (src / "model.qonnx.onnx").write_bytes(b"onnx")
    (src / "model.json").write_text(json.dumps({"files": {"qonnx": "model.qonnx.onnx", "qcdq": "../../x"}}))
    with pytest.raises(CompileError, match=r"files\.qcdq '\.\./\.\./x' contains '\.\.'"):
        _copy_artifact(src / "model.qonnx.onnx", build)
    assert victim.read_text() == "precious"
    assert list(build.iterdir()) == [], "nothing half-copied"


def test_compile_cli_refuses_a_model_json_escape(tmp_path):
    """The same through `fpga-gan compile` on a real QONNX file: exit 2, one line, nothing outside."""
    from .test_compiler import export_tiny_unet

    src = tmp_path / "deep" / "er" / "src"
    src.mkdir(parents=True)
    model = export_tiny_unet(src / "model.qonnx.onnx")
    victim = tmp_path / "b1" / "x"
    (tmp_path / "b1").mkdir()
    victim.write_text("precious")
    (src / "model.json").write_text(json.dumps({"files": {"qonnx": "model.qonnx.onnx", "evil": "../../x"}}))
    (tmp_path / "deep" / "x").write_text("attacker")   # src/../../x, which was copied to build/../../x
    build = tmp_path / "b1" / "b2" / "build"
    result = _cli("compile", str(model), "--board", "ultra96", "--out", str(build))
    assert result.exit_code == 2, result.output
    assert "contains '..'" in result.output
    assert victim.read_text() == "precious"
    assert not (build / "report.json").exists(), "refused before any stage ran"


# -- integrity under backend="auto" ----------------------------------------------------------

@pytest.fixture
def tampered(zoo_artifacts, tmp_path) -> Path:
    art = board_artifact(zoo_artifacts["dcgan"], tmp_path / BOARD_NAME)
    tamper_onnx(art / "model.qcdq.onnx")
    return art


def _codes(acc: Accelerator) -> np.ndarray:
    return acc.quantize_input(np.random.default_rng(0).standard_normal((2, *acc.input_spec.shape[1:])))


@pytest.mark.parametrize("where", ["no-board", "board-without-pynq", "board-with-pynq"])
def test_a_tampered_artifact_stops_auto(tampered, zoo_artifacts, monkeypatch, where):
    """Before, the pynq backend refused the file (sha256 mismatch) and auto ran the tampered graph
    on the cpu backend, with no warning."""
    if where == "no-board":
        monkeypatch.delenv("BOARD", raising=False)
    else:
        monkeypatch.setenv("BOARD", "Pynq-Z2")
    if where == "board-with-pynq":
        from .pynq_double import PynqDouble

        packing = json.loads((tampered / "manifest.json").read_text())["packing"]
        double = PynqDouble(packing, lambda codes: codes)
        monkeypatch.setitem(sys.modules, "pynq", double.module)
    else:
        monkeypatch.setitem(sys.modules, "pynq", None)
    with pytest.raises(IntegrityError, match=r"model\.qcdq\.onnx does not match .*sha256 mismatch"):
        Accelerator.open(tampered)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        Accelerator.open(tampered, backend="cpu")
    # the tampering is real: without its manifest the graph gives other codes
    (tampered / "manifest.json").unlink()
    with Accelerator.open(tampered, backend="cpu") as bad, \
            Accelerator.open(zoo_artifacts["dcgan"], backend="cpu") as good:
        assert not np.array_equal(bad.run(_codes(bad)), good.run(_codes(good)))


def test_auto_uses_cpu_only_without_a_board(zoo_artifacts, tmp_path, monkeypatch):
    art = board_artifact(zoo_artifacts["dcgan"], tmp_path / BOARD_NAME)
    monkeypatch.delenv("BOARD", raising=False)
    with Accelerator.open(art) as acc:                  # intact, no board here: the CPU
        assert acc.backend_name == "cpu"
    monkeypatch.setenv("BOARD", "KV260")                # a board, but another one: stop, say why
    from .pynq_double import PynqDouble

    packing = json.loads((art / "manifest.json").read_text())["packing"]
    monkeypatch.setitem(sys.modules, "pynq", PynqDouble(packing, lambda c: c).module)
    with pytest.raises(IntegrityError, match="this artifact is for Pynq-Z2.*the board here is KV260"):
        Accelerator.open(art)


# -- deploy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("link", ["graph", "extra-file", "directory"])
def test_deploy_never_follows_a_symlink(zoo_artifacts, tmp_path, link):
    """Before, copytree followed the link: the tarball held the file it pointed to (a tampered
    graph, or any file the link named), and deploy checked nothing."""
    from fpga_gan.bitstream.deploy import DeployError, make_deploy

    art = tmp_path / "art"
    shutil.copytree(zoo_artifacts["dcgan"], art)
    outside = tmp_path / "outside"
    outside.mkdir()
    if link == "graph":
        shutil.copyfile(art / "model.qcdq.onnx", outside / "evil.onnx")
        tamper_onnx(outside / "evil.onnx")
        (art / "model.qcdq.onnx").unlink()
        (art / "model.qcdq.onnx").symlink_to(outside / "evil.onnx")
    elif link == "extra-file":
        (outside / "secret.txt").write_text("ssh key")
        (art / "notes.txt").symlink_to(outside / "secret.txt")
    else:
        (outside / "secret.txt").write_text("ssh key")
        (art / "more").symlink_to(outside, target_is_directory=True)
    dist = tmp_path / "dist"
    with pytest.raises(DeployError, match="is a symlink"):
        make_deploy("dcgan", "pynq-z2", artifact=art, cpu_only=True, samples=1, out_dir=dist, log=lambda _: None)
    assert not dist.exists() or not any(dist.iterdir()), "no tarball, not even a partial one"


def test_deploy_checks_the_manifest_hashes(zoo_artifacts, tmp_path):
    from fpga_gan.bitstream.deploy import DeployError, make_deploy

    art = board_artifact(zoo_artifacts["dcgan"], tmp_path / BOARD_NAME, cpu_only=True)
    tamper_onnx(art / "model.qcdq.onnx")
    with pytest.raises(DeployError, match="sha256 mismatch"):
        make_deploy("dcgan", "pynq-z2", artifact=art, samples=1, out_dir=tmp_path / "dist", log=lambda _: None)
    assert not (tmp_path / "dist" / f"{BOARD_NAME}.tar.gz").exists()


def test_deploy_tarball_holds_regular_files_only(zoo_artifacts, tmp_path):
    from fpga_gan.bitstream.deploy import make_deploy

    tarball = make_deploy("dcgan", "pynq-z2", artifact=zoo_artifacts["dcgan"], cpu_only=True, samples=1,
                          out_dir=tmp_path, log=lambda _: None)
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    assert all(m.isfile() or m.isdir() for m in members)
    assert "dcgan-pynq-z2/fpga_gan/_files.py" in {m.name for m in members}, "the runtime's helper ships"


# -- the helper itself -----------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("../x", r"contains '\.\.'"), ("a/../../x", r"contains '\.\.'"), ("/etc/passwd", "absolute path"),
    ("C:\\x", "absolute path"), ("", "non-empty"), (None, "non-empty"), (3, "non-empty"), ("a\x00b", "non-empty"),
    ("link/x", "outside"),
])
def test_inside_refuses_names_that_leave_the_directory(tmp_path, name, message):
    from fpga_gan._files import UnsafePathError, inside

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=message):
        inside(tmp_path / "d", name)
    assert inside(tmp_path / "d", "sub/ok.txt") == tmp_path / "d" / "sub" / "ok.txt"


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    import os

    from fpga_gan._files import write_json_atomic

    target = tmp_path / "state.json"
    write_json_atomic(target, {"a": 1})

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"], "no temporary left behind"


def test_runtime_still_imports_without_torch_onnx_or_finn():
    code = ("import sys, fpga_gan.runtime, fpga_gan.runtime.manifest, fpga_gan._files; "
            "print(','.join(m for m in ('torch', 'finn', 'onnx', 'onnxruntime', 'qonnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == ""


def test_artifact_errors_are_artifact_errors():
    assert issubclass(IntegrityError, ArtifactError)
