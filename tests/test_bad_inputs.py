"""The bad-input catalogue (issue 13, item 6): what an attacker or a careless user hands us.

Each case builds one bad input for real - a checkpoint, an ONNX file, an image, a data set, a
compile option, a build directory, an artifact, a manifest, a runtime call - goes through the
entry point a user would use (the CLI in-process, or the public API), and asserts

* the clear error: exit code 2 and one ``error:`` line naming the problem (CLI), or the exception
  type and message (API) - or, where the input is legal, the correct result;
* no traceback: an exception escaping the CLI is a bug in fpga_gan, never a user error;
* nothing half-written looks complete: no output file, no artifact, no tarball, the user's own
  files untouched.

Cases are registered with ``@case(area)`` and run by one parametrised test, so the catalogue
reads as a list. Other branches add their areas (CLI options, folding schema) the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fpga_gan.cli import main

from ._hostile import BOARD_NAME, ZOO, Payload, board_artifact, payload_checkpoint, png_header, tamper_onnx

# ------------------------------------------------------------------------------------ machinery


@dataclass
class Env:
    tmp: Path
    artifacts: dict[str, Path]
    dataset: Path
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *args: str):
        """Run ``fpga-gan ARGS`` in-process; fail on any exception that is not a clean exit."""
        result = CliRunner().invoke(main, [str(a) for a in args])
        exc = result.exception
        assert exc is None or isinstance(exc, SystemExit), f"fpga-gan {' '.join(map(str, args))} raised {exc!r}"
        assert "Traceback" not in result.output
        return result

    def cli_error(self, message: str, *args: str) -> str:
        """``fpga-gan ARGS`` exits 2 with an ``error:`` line matching ``message`` (a regex)."""
        result = self.cli(*args)
        assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
        assert "error:" in result.output, result.output
        import re

        assert re.search(message, result.output, re.S), f"{message!r} not in {result.output!r}"
        return result.output

    def copy_dataset(self) -> Path:
        dest = self.tmp / "ds"
        shutil.copytree(self.dataset, dest)
        return dest

    def artifact(self, name: str = "dcgan") -> Path:
        dest = self.tmp / f"art-{name}"
        shutil.copytree(self.artifacts[name], dest)
        return dest


CASES: list[tuple[str, Callable[[Env], None]]] = []


def case(area: str):
    def register(fn: Callable[[Env], None]):
        CASES.append((f"{area}:{fn.__name__}", fn))
        return fn
    return register


@pytest.fixture
def env(tmp_path, zoo_artifacts, small_dataset, monkeypatch) -> Env:
    monkeypatch.chdir(tmp_path)                 # nothing may land in the repository
    monkeypatch.delenv("BOARD", raising=False)
    return Env(tmp_path, zoo_artifacts, small_dataset, monkeypatch)


def _export_error(env: Env, weights: Path, message: str) -> None:
    out = env.tmp / "out"
    env.cli_error(message, "export", weights, "-o", out, "--check", "0")
    assert not out.exists(), "a failed export left an output directory"
    assert not list(env.tmp.glob(".out*")), "a failed export left its partial directory"


def _torch_save(path: Path, obj) -> Path:
    import torch

    torch.save(obj, path)
    return path


def _zoo_blob() -> dict:
    import torch

    return torch.load(ZOO / "dcgan_w4a4.pt", map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------ checkpoints

@case("checkpoint")
def payload_inside_a_working_checkpoint(env):
    marker = env.tmp / "ran"
    _export_error(env, payload_checkpoint(env.tmp / "evil.pt", marker), r"refusing to load .*callable exec")
    assert not marker.exists()


@case("checkpoint")
def payload_alone(env):
    marker = env.tmp / "ran"
    _export_error(env, payload_checkpoint(env.tmp / "evil.pt", marker, working=False), "could run code")
    assert not marker.exists()


@case("checkpoint")
def payload_via_os_system(env):
    class Shell:
        def __reduce__(self):
            return (os.system, (f"touch {env.tmp / 'ran'}",))

    _export_error(env, _torch_save(env.tmp / "evil.pt", {"arch": "dcgan", "x": Shell()}), "could run code")
    assert not (env.tmp / "ran").exists()


@case("checkpoint")
def empty_file(env):
    (env.tmp / "empty.pt").write_bytes(b"")
    _export_error(env, env.tmp / "empty.pt", "cannot read weights file")


@case("checkpoint")
def truncated_file(env):
    data = (ZOO / "dcgan_w4a4.pt").read_bytes()
    (env.tmp / "half.pt").write_bytes(data[: len(data) // 2])
    _export_error(env, env.tmp / "half.pt", "cannot read weights file")


@case("checkpoint")
def text_file_named_pt(env):
    (env.tmp / "notes.pt").write_text("these are not weights\n")
    _export_error(env, env.tmp / "notes.pt", "cannot read weights file|refusing to load")


@case("checkpoint")
def a_bare_tensor(env):
    import torch

    _export_error(env, _torch_save(env.tmp / "t.pt", torch.zeros(3)), "holds a Tensor, not the dict")


@case("checkpoint")
def dict_without_arch(env):
    blob = _zoo_blob()
    del blob["arch"]
    _export_error(env, _torch_save(env.tmp / "w.pt", blob), "not a generator checkpoint: it lacks arch")


@case("checkpoint")
def unknown_architecture(env):
    blob = {**_zoo_blob(), "arch": "stylegan9"}
    _export_error(env, _torch_save(env.tmp / "w.pt", blob), "unknown architecture 'stylegan9'")


@case("checkpoint")
def config_not_a_dict(env):
    blob = {**_zoo_blob(), "config": "ngf=32"}
    _export_error(env, _torch_save(env.tmp / "w.pt", blob), "cannot load generator weights")


@case("checkpoint")
def weights_of_another_shape(env):
    blob = _zoo_blob()
    blob["config"] = {**blob["config"], "ngf": 8}
    _export_error(env, _torch_save(env.tmp / "w.pt", blob), "cannot load generator weights.*size mismatch")


@case("checkpoint")
def missing_file(env):
    env.cli_error("weights file not found", "export", env.tmp / "nope.pt", "-o", env.tmp / "out")
    assert not (env.tmp / "out").exists()


@case("checkpoint")
def float_twin_cannot_be_exported(env):
    _export_error(env, ZOO / "dcgan_float.pt", "only quantized generators can be exported")


@case("checkpoint")
def resume_payload(env):
    run = env.tmp / "run"
    run.mkdir()
    _torch_save(run / "checkpoint.pt", {"step": Payload(env.tmp / "ran")})
    env.cli_error("refusing to load --resume checkpoint", "train", "dcgan", "--out", run, "--steps", "1",
                  "--garments", "8", "--batch", "2", "--resume")
    assert not (env.tmp / "ran").exists() and not (run / "generator.pt").exists()


@case("checkpoint")
def resume_from_a_generator_file(env):
    run = env.tmp / "run"
    run.mkdir()
    shutil.copyfile(ZOO / "dcgan_w4a4.pt", run / "checkpoint.pt")
    env.cli_error("not a checkpoint of this training loop: it lacks generator", "train", "dcgan", "--out", run,
                  "--steps", "1", "--garments", "8", "--batch", "2", "--resume")
    assert not (run / "generator.pt").exists()


@case("checkpoint")
def init_from_a_truncated_file(env):
    data = (ZOO / "dcgan_w4a4.pt").read_bytes()
    (env.tmp / "half.pt").write_bytes(data[:1000])
    env.cli_error("cannot read weights file", "train", "dcgan", "--out", env.tmp / "run", "--steps", "1",
                  "--garments", "8", "--batch", "2", "--ngf", "32", "--init-from", env.tmp / "half.pt")
    assert not (env.tmp / "run" / "generator.pt").exists()


# ------------------------------------------------------------------------------------ ONNX files

def _compile_error(env: Env, model: Path, message: str) -> None:
    build = env.tmp / "build"
    env.cli_error(message, "compile", model, "--board", "ultra96", "--out", build)
    assert not (build / "report.json").exists() and not (build / "model.json").exists()


def _external_data_model(env: Env, location: str) -> Path:
    """A QONNX-looking model whose weight lives in external data at ``location``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = env.tmp / "m"
    d.mkdir(exist_ok=True)
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = d / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


@case("onnx")
def not_an_onnx_file(env):
    (env.tmp / "m.onnx").write_text("definitely not protobuf \x00\x01\x02" * 10)
    _compile_error(env, env.tmp / "m.onnx", "is not an ONNX model|fails the ONNX checker")


@case("onnx")
def empty_onnx_file(env):
    (env.tmp / "m.onnx").write_bytes(b"")
    _compile_error(env, env.tmp / "m.onnx", "fails the ONNX checker|not an ONNX model")


@case("onnx")
def external_data_with_dotdot(env):
    (env.tmp / "secret.bin").write_bytes(np.full(16, 7, np.float32).tobytes())
    _compile_error(env, _external_data_model(env, "../secret.bin"), r"external data of tensor 'w'.*contains '\.\.'")


@case("onnx")
def external_data_absolute(env):
    (env.tmp / "secret.bin").write_bytes(np.full(16, 7, np.float32).tobytes())
    _compile_error(env, _external_data_model(env, str(env.tmp / "secret.bin")), "is an absolute path")


@case("onnx")
def external_data_symlink_out(env):
    (env.tmp / "secret.bin").write_bytes(np.full(16, 7, np.float32).tobytes())
    path = _external_data_model(env, "w.bin")
    (path.parent / "w.bin").symlink_to(env.tmp / "secret.bin")
    _compile_error(env, path, "outside")


@case("onnx")
def external_data_missing(env):
    _compile_error(env, _external_data_model(env, "w.bin"), "must be a regular file beside the model.*missing")


@case("onnx")
def graph_failing_the_checker(env):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), str(env.tmp / "m.onnx"))
    _compile_error(env, env.tmp / "m.onnx", "fails the ONNX checker.*nowhere")


@case("onnx")
def float_only_model(env):
    onnx_path = _external_data_model(env, "w.bin")
    (onnx_path.parent / "w.bin").write_bytes(np.ones(16, np.float32).tobytes())
    _compile_error(env, onnx_path, "float-only ONNX model, not QONNX")


@case("onnx")
def qcdq_model_handed_to_compile(env):
    _compile_error(env, env.artifacts["dcgan"] / "model.qcdq.onnx", r"QCDQ \(QuantizeLinear/DequantizeLinear\)")


@case("onnx")
def qonnx_export_of_a_bad_file(env):
    from fpga_gan.export.artifact import ArtifactExportError, artifact_from_qonnx

    (env.tmp / "m.onnx").write_text("nope")
    with pytest.raises(ArtifactExportError, match="not an ONNX model|fails the ONNX checker"):
        artifact_from_qonnx(env.tmp / "m.onnx", env.tmp / "out", "m")
    assert not (env.tmp / "out" / "model.json").exists()


@case("onnx")
def model_file_missing(env):
    _compile_error(env, env.tmp / "nope.onnx", "does not exist")


# ------------------------------------------------------------------------------------ model.json beside a model

def _model_json_beside(env: Env, files) -> Path:
    src = env.tmp / "p" / "q" / "src"
    src.mkdir(parents=True)
    shutil.copyfile(env.artifacts["dcgan"] / "model.qonnx.onnx", src / "model.qonnx.onnx")
    (src / "model.json").write_text(json.dumps({"files": files}) if not isinstance(files, str) else files)
    return src / "model.qonnx.onnx"


@case("model.json")
def names_dotdot(env):
    (env.tmp / "p" / "x").parent.mkdir(parents=True, exist_ok=True)
    _compile_error(env, _model_json_beside(env, {"qonnx": "model.qonnx.onnx", "x": "../../x"}),
                   r"files\.x '\.\./\.\./x' contains '\.\.'")


@case("model.json")
def names_an_absolute_path(env):
    victim = env.tmp / "victim"
    victim.write_text("precious")
    _compile_error(env, _model_json_beside(env, {"qonnx": "model.qonnx.onnx", "x": str(victim)}), "absolute path")
    assert victim.read_text() == "precious"


@case("model.json")
def names_a_symlink_out(env):
    model = _model_json_beside(env, {"qonnx": "model.qonnx.onnx", "qcdq": "link.onnx"})
    (env.tmp / "elsewhere.onnx").write_text("x")
    (model.parent / "link.onnx").symlink_to(env.tmp / "elsewhere.onnx")
    _compile_error(env, model, "outside")


@case("model.json")
def names_a_sub_directory(env):
    model = _model_json_beside(env, {"qonnx": "model.qonnx.onnx", "qcdq": "sub/m.onnx"})
    _compile_error(env, model, "must be a plain file name")


@case("model.json")
def is_not_json(env):
    _compile_error(env, _model_json_beside(env, "{not json"), "model.json is not readable JSON")


@case("model.json")
def files_is_a_list(env):
    _compile_error(env, _model_json_beside(env, ["model.qonnx.onnx"]), "'files' must map roles to file names")


# ------------------------------------------------------------------------------------ images and pairs

def _tryon_error(env: Env, message: str, ds: Path, person: str, cloth: str, split: str = "test") -> None:
    out = env.tmp / "out.png"
    env.cli_error(message, "tryon", "--data", ds, "--split", split, "--person", person, "--cloth", cloth,
                  "-o", out, "--artifact", env.artifacts["tryon"])
    assert not out.exists()


def _first_pair(ds: Path) -> tuple[str, str]:
    return tuple((ds / "test_pairs.txt").read_text().split()[:2])


@case("image")
def a_20000x20000_png(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    png_header(ds / "test" / "image" / person, 20000, 20000)
    _tryon_error(env, r"image .* over the limit of 16,777,216 pixels", ds, person, cloth)


@case("image")
def just_over_our_limit(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    png_header(ds / "test" / "cloth" / cloth, 5000, 4000)     # below PIL's own bomb check: ours refuses it
    _tryon_error(env, "is 5000x4000 pixels, over the limit", ds, person, cloth)


@case("image")
def a_huge_garment_mask(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    png_header(ds / "test" / "cloth-mask" / cloth, 100000, 3000)
    _tryon_error(env, "over the limit", ds, person, cloth)


@case("image")
def a_1x1_person(env):
    from PIL import Image

    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    Image.new("RGB", (1, 1)).save(ds / "test" / "image" / person)
    _tryon_error(env, "is 1x1 pixels; each side must be at least", ds, person, cloth)


@case("image")
def a_truncated_png(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    path = ds / "test" / "cloth" / cloth
    path.write_bytes(path.read_bytes()[:60])
    _tryon_error(env, "cannot read image", ds, person, cloth)


@case("image")
def text_named_png(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    (ds / "test" / "agnostic-v3.2" / person).write_text("hello")
    _tryon_error(env, "cannot read image", ds, person, cloth)


@case("image")
def a_gif_named_png(env):
    from PIL import Image

    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    Image.new("RGB", (48, 64)).save(ds / "test" / "image" / person, format="GIF")
    _tryon_error(env, "cannot read image", ds, person, cloth)


@case("image")
def missing_image(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    (ds / "test" / "cloth" / cloth).unlink()
    _tryon_error(env, "missing image file", ds, person, cloth)


@case("image")
def person_name_with_dotdot(env):
    _tryon_error(env, r"contains '\.\.'", env.dataset, "../../train/image/000000_00.png", "000000_00.png")


@case("image")
def person_name_absolute(env):
    _tryon_error(env, "absolute path", env.dataset, str(env.dataset / "test" / "image" / "x.png"), "y.png")


@case("image")
def image_symlink_out_of_the_data_set(env):
    from PIL import Image

    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    Image.new("RGB", (48, 64)).save(env.tmp / "outside.png")
    (ds / "test" / "image" / person).unlink()
    (ds / "test" / "image" / person).symlink_to(env.tmp / "outside.png")
    _tryon_error(env, "outside", ds, person, cloth)


@case("image")
def split_escaping_the_root(env):
    _tryon_error(env, r"split '\.\./\.\.' contains '\.\.'", env.dataset, "a.png", "b.png", split="../..")


@case("pairs")
def pairs_line_with_three_names(env):
    (env.tmp / "p.txt").write_text("a.png b.png c.png\n")
    env.cli_error(r"p\.txt:1: expected '<person> <cloth>'", "tryon", "--data", env.dataset, "--pairs",
                  env.tmp / "p.txt", "--out-dir", env.tmp / "o")
    assert not (env.tmp / "o").exists()


@case("pairs")
def pairs_name_escaping(env):
    (env.tmp / "p.txt").write_text("../../../etc/passwd 000000_00.png\n")
    env.cli_error(r"contains '\.\.'", "tryon", "--data", env.dataset, "--pairs", env.tmp / "p.txt",
                  "--out-dir", env.tmp / "o", "--artifact", env.artifacts["tryon"])
    assert not (env.tmp / "o").exists()


@case("pairs")
def pairs_file_missing(env):
    env.cli_error("missing pairs file", "tryon", "--data", env.dataset, "--pairs", env.tmp / "none.txt",
                  "--out-dir", env.tmp / "o")


@case("pairs")
def pairs_file_too_big(env):
    with open(env.tmp / "p.txt", "wb") as f:
        f.truncate(17 << 20)                    # sparse: 17 MiB of nothing, over the 16 MiB limit
    env.cli_error("pairs file .* over the limit", "tryon", "--data", env.dataset, "--pairs", env.tmp / "p.txt",
                  "--out-dir", env.tmp / "o")


@case("keypoints")
def keypoints_nan(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    kp = ds / "test" / "openpose_json" / f"{Path(person).stem}_keypoints.json"
    data = json.loads(kp.read_text())
    data["people"][0]["pose_keypoints_2d"][0] = float("nan")
    kp.write_text(json.dumps(data))
    _tryon_error(env, "NaN or infinite", ds, person, cloth)


@case("keypoints")
def keypoints_wrong_count(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    kp = ds / "test" / "openpose_json" / f"{Path(person).stem}_keypoints.json"
    kp.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0, 2.0, 3.0]}]}))
    _tryon_error(env, "expected 54 .* got 3", ds, person, cloth)


@case("keypoints")
def keypoints_not_json(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    (ds / "test" / "openpose_json" / f"{Path(person).stem}_keypoints.json").write_text("{")
    _tryon_error(env, "cannot read keypoint JSON", ds, person, cloth)


@case("keypoints")
def keypoints_a_list(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    (ds / "test" / "openpose_json" / f"{Path(person).stem}_keypoints.json").write_text("[1, 2]")
    _tryon_error(env, "no people", ds, person, cloth)


@case("keypoints")
def keypoints_strings(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    (ds / "test" / "openpose_json" / f"{Path(person).stem}_keypoints.json").write_text(
        json.dumps({"people": [{"pose_keypoints_2d": ["a"] * 54}]}))
    _tryon_error(env, "must be a list of numbers", ds, person, cloth)


@case("keypoints")
def keypoint_file_too_big(env):
    ds = env.copy_dataset()
    person, cloth = _first_pair(ds)
    with open(ds / "test" / "openpose_json" / f"{Path(person).stem}_keypoints.json", "wb") as f:
        f.truncate(2 << 20)
    _tryon_error(env, "keypoint JSON .* over the limit", ds, person, cloth)


# ------------------------------------------------------------------------------------ data sets

def _data_make(env: Env, out: Path, *extra: str):
    return env.cli("data", "make", "--out", out, "--n", "4", "--workers", "1", *extra)


@case("data")
def overwrite_a_directory_that_is_not_ours(env):
    out = env.tmp / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    env.cli_error("refusing to replace .*photos.*no .fpga_gan marker", "data", "make", "--out", out, "--n", "4",
                  "--workers", "1", "--overwrite")
    assert (out / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in env.tmp.iterdir()) == ["photos"], "no partial data set left"


@case("data")
def overwrite_an_artifact(env):
    art = env.artifact()
    env.cli_error("holds an fpga_gan artifact, not a dataset", "data", "make", "--out", art, "--n", "4",
                  "--workers", "1", "--overwrite")
    assert (art / "model.json").is_file()


@case("data")
def overwrite_our_own_data_set(env):
    out = env.tmp / "d"
    assert _data_make(env, out, "--seed", "1").exit_code == 0
    result = _data_make(env, out, "--seed", "2", "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "dataset.json").read_text())["seed"] == 2


@case("data")
def not_empty_without_overwrite(env):
    out = env.tmp / "d"
    out.mkdir()
    (out / "x").write_text("x")
    env.cli_error("not empty", "data", "make", "--out", out, "--n", "4")
    assert (out / "x").read_text() == "x"


@case("data")
def out_is_a_file(env):
    (env.tmp / "f").write_text("x")
    env.cli_error("not a directory", "data", "make", "--out", env.tmp / "f", "--n", "4", "--overwrite")
    assert (env.tmp / "f").read_text() == "x"


@case("data")
def out_is_a_symlink(env):
    target = env.tmp / "real"
    target.mkdir()
    (target / "keep").write_text("x")
    (env.tmp / "link").symlink_to(target, target_is_directory=True)
    env.cli_error("not a directory", "data", "make", "--out", env.tmp / "link", "--n", "4", "--overwrite")
    assert (target / "keep").read_text() == "x"


@case("data")
def zero_samples(env):
    env.cli_error("n must be positive", "data", "make", "--out", env.tmp / "d", "--n", "0")
    assert not (env.tmp / "d").exists()


@case("data")
def fraction_above_one(env):
    env.cli_error("test_fraction", "data", "make", "--out", env.tmp / "d", "--n", "4", "--test-fraction", "1.5")
    assert not (env.tmp / "d").exists()


@case("data")
def size_too_small(env):
    env.cli_error("at least 32x32", "data", "make", "--out", env.tmp / "d", "--n", "4", "--size", "8x8")
    assert not (env.tmp / "d").exists()


@case("data")
def data_root_missing(env):
    env.cli_error("data set root not found", "tryon", "--data", env.tmp / "none", "--person", "a.png",
                  "--cloth", "b.png", "-o", env.tmp / "o.png", "--artifact", env.artifacts["tryon"])


@case("data")
def train_on_a_missing_data_set(env):
    env.cli_error("data set root not found", "train", "tryon", "--data", env.tmp / "none", "--out", env.tmp / "run",
                  "--steps", "1")
    assert not (env.tmp / "run" / "generator.pt").exists()


# ------------------------------------------------------------------------------------ export output directories

@case("export")
def export_into_a_directory_that_is_not_ours(env):
    out = env.tmp / "docs"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    env.cli_error("refusing to replace .*docs.*no .fpga_gan marker", "export", "dcgan", "-o", out, "--check", "0")
    assert (out / "thesis.tex").read_text() == "precious" and sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


@case("export")
def export_onto_a_file(env):
    (env.tmp / "f").write_text("x")
    env.cli_error("not a directory", "export", "dcgan", "-o", env.tmp / "f", "--check", "0")
    assert (env.tmp / "f").read_text() == "x"


@case("export")
def export_onto_a_data_set(env):
    out = env.tmp / "d"
    assert _data_make(env, out).exit_code == 0
    env.cli_error("holds an fpga_gan dataset, not an artifact", "export", "dcgan", "-o", out, "--check", "0")
    assert (out / "dataset.json").is_file()


@case("export")
def export_replaces_its_own_artifact(env):
    out = env.artifact()
    (out / "model.json").write_text("{}")                # stale: replaced as a whole
    result = env.cli("export", "dcgan", "-o", out, "--check", "0")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "model.json").read_text())["model"] == "dcgan"


# ------------------------------------------------------------------------------------ compile options and build dirs

@case("compile")
def unknown_board(env):
    env.cli_error("unknown board 'de10-nano'; valid boards: pynq-z2", "compile", "dcgan", "--board", "de10-nano", "--out", env.tmp / "b")
    assert not (env.tmp / "b" / "report.json").exists()


@case("compile")
def folding_file_missing(env):
    env.cli_error("folding file .* does not exist", "compile", "dcgan", "--board", "ultra96", "--folding",
                  env.tmp / "none.json", "--out", env.tmp / "b")
    assert not (env.tmp / "b" / "report.json").exists()


@case("compile")
def neither_zoo_name_nor_file(env):
    env.cli_error("neither a zoo model", "compile", "stylegan", "--board", "ultra96", "--out", env.tmp / "b")


@case("build dir")
def compile_into_a_directory_that_is_not_ours(env):
    out = env.tmp / "home"
    out.mkdir()
    (out / "report.json").write_text("my own report")      # a compile removes a stale report.json of its own
    env.cli_error("refusing to replace .*home.*no .fpga_gan marker", "compile", "dcgan", "--board", "ultra96",
                  "--out", out)
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert (out / "report.json").read_text() == "my own report"


@case("build dir")
def compile_into_an_artifact(env):
    art = env.artifact()
    before = sorted(p.name for p in art.iterdir())
    env.cli_error("holds an fpga_gan artifact, not a build", "compile", "dcgan", "--board", "ultra96", "--out", art)
    assert sorted(p.name for p in art.iterdir()) == before


@case("build dir")
def demo_over_a_data_folder_that_is_not_ours(env):
    out = env.tmp / "demo"
    (out / "data").mkdir(parents=True)
    (out / "data" / "shoot.png").write_bytes(b"precious")
    env.cli_error("refusing to replace .*data.*no .fpga_gan marker", "demo", "--out", out)
    assert (out / "data" / "shoot.png").read_bytes() == b"precious"
    assert sorted(p.name for p in (out / "data").iterdir()) == ["shoot.png"]


@case("build dir")
def sim_of_a_missing_build_dir(env):
    env.cli_error(r"none is not a compile build dir \(no state\.json\)", "sim", env.tmp / "none")
    assert not (env.tmp / "none").exists()


@case("build dir")
def sim_of_a_directory_that_is_no_build(env):
    (env.tmp / "b").mkdir()
    (env.tmp / "b" / "notes.txt").write_text("x")
    env.cli_error(r"is not a compile build dir.*run fpga-gan compile first", "sim", env.tmp / "b")
    assert sorted(p.name for p in (env.tmp / "b").iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------------------------ artifacts (runtime)

def _open_error(env: Env, art: Path, message: str, backend: str = "cpu", error=None) -> None:
    from fpga_gan.runtime import Accelerator, ArtifactError

    with pytest.raises(error or ArtifactError, match=message):
        Accelerator.open(art, backend=backend)


def _edit_model_json(art: Path, edit) -> Path:
    meta = json.loads((art / "model.json").read_text())
    edit(meta)
    (art / "model.json").write_text(json.dumps(meta))
    return art


@case("artifact")
def artifact_dir_missing(env):
    _open_error(env, env.tmp / "none", "artifact directory not found")


@case("artifact")
def artifact_without_model_json(env):
    (env.tmp / "a").mkdir()
    _open_error(env, env.tmp / "a", "has no model.json")


@case("artifact")
def model_json_not_json(env):
    art = env.artifact()
    (art / "model.json").write_text("{")
    _open_error(env, art, "is not valid JSON")


@case("artifact")
def model_json_a_list(env):
    art = env.artifact()
    (art / "model.json").write_text("[]")
    _open_error(env, art, "must hold a JSON object, got list")


@case("artifact")
def qcdq_name_with_dotdot(env):
    art = _edit_model_json(env.artifact(), lambda m: m["files"].update(qcdq="../art-x/model.qcdq.onnx"))
    _open_error(env, art, r"files\.qcdq '\.\./art-x/model\.qcdq\.onnx' contains '\.\.'")


@case("artifact")
def qcdq_name_absolute(env):
    other = env.artifacts["dcgan"] / "model.qcdq.onnx"
    _open_error(env, _edit_model_json(env.artifact(), lambda m: m["files"].update(qcdq=str(other))), "absolute path")


@case("artifact")
def qcdq_symlink_out(env):
    art = env.artifact()
    (art / "model.qcdq.onnx").unlink()
    (art / "model.qcdq.onnx").symlink_to(env.artifacts["dcgan"] / "model.qcdq.onnx")
    _open_error(env, art, "outside")


@case("artifact")
def schema_from_the_future(env):
    _open_error(env, _edit_model_json(env.artifact(), lambda m: m.update(schema_version=2)), "schema_version 2")


@case("artifact")
def inputs_missing(env):
    _open_error(env, _edit_model_json(env.artifact(), lambda m: m.pop("inputs")), "lacks a field")


@case("artifact")
def scale_not_a_number(env):
    _open_error(env, _edit_model_json(env.artifact(), lambda m: m["inputs"][0].update(scale="big")), "lacks a field|scale")


@case("artifact")
def qcdq_garbage(env):
    art = env.artifact()
    (art / "model.qcdq.onnx").write_bytes(b"\x00garbage" * 100)
    _open_error(env, art, "ONNX Runtime cannot load")


@case("artifact")
def unknown_backend(env):
    _open_error(env, env.artifacts["dcgan"], "unknown backend 'gpu'", backend="gpu", error=ValueError)


@case("artifact")
def cli_with_a_broken_artifact(env):
    art = env.artifact()
    (art / "model.json").write_text("{")
    env.cli_error("is not valid JSON", "design", "sample", "-n", "2", "-o", env.tmp / "d.png", "--artifact", art)
    assert not (env.tmp / "d.png").exists()


# ------------------------------------------------------------------------------------ manifests and integrity

def _board(env: Env, cpu_only: bool = False) -> Path:
    return board_artifact(env.artifacts["dcgan"], env.tmp / BOARD_NAME, cpu_only=cpu_only)


def _integrity(env: Env, art: Path, message: str, backend: str = "auto") -> None:
    from fpga_gan.runtime.accelerator import IntegrityError

    _open_error(env, art, message, backend=backend, error=IntegrityError)


@case("manifest")
def tampered_graph_on_cpu(env):
    art = _board(env)
    tamper_onnx(art / "model.qcdq.onnx")
    _integrity(env, art, "sha256 mismatch", backend="cpu")


@case("manifest")
def tampered_graph_under_auto(env):
    art = _board(env)
    tamper_onnx(art / "model.qcdq.onnx")
    _integrity(env, art, r"model\.qcdq\.onnx does not match")


@case("manifest")
def tampered_model_json_under_auto(env):
    art = _board(env)
    _edit_model_json(art, lambda m: m["outputs"][0].update(scale=0.5))
    _integrity(env, art, r"model\.json does not match")


@case("manifest")
def tampered_bitstream_with_a_board(env):
    from .pynq_double import PynqDouble

    art = _board(env)
    env.monkeypatch.setenv("BOARD", "Pynq-Z2")
    packing = json.loads((art / "manifest.json").read_text())["packing"]
    env.monkeypatch.setitem(sys.modules, "pynq", PynqDouble(packing, lambda c: c).module)
    (art / f"{BOARD_NAME}.bit").write_bytes(b"evil")
    _integrity(env, art, r"\.bit does not match")


@case("manifest")
def listed_file_replaced_by_a_symlink(env):
    art = _board(env)
    (art / "model.qcdq.onnx").unlink()
    (art / "model.qcdq.onnx").symlink_to(env.artifacts["dcgan"] / "model.qcdq.onnx")
    _integrity(env, art, "symlink|outside", backend="cpu")


@case("manifest")
def manifest_is_a_symlink(env):
    art = _board(env)
    shutil.move(art / "manifest.json", env.tmp / "manifest.json")
    (art / "manifest.json").symlink_to(env.tmp / "manifest.json")
    _integrity(env, art, "manifest.json is a symlink", backend="cpu")


@case("manifest")
def manifest_lists_a_path(env):
    art = _board(env)
    data = json.loads((art / "manifest.json").read_text())
    data["files"]["../secret"] = "0" * 64
    (art / "manifest.json").write_text(json.dumps(data))
    _open_error(env, art, "must be a plain file name inside the artifact directory")


@case("manifest")
def manifest_not_json(env):
    art = _board(env)
    (art / "manifest.json").write_text("{")
    _open_error(env, art, "is not readable JSON")


@case("manifest")
def listed_file_missing(env):
    art = _board(env)
    (art / "model.qonnx.onnx").unlink()
    _integrity(env, art, "artifact file missing", backend="cpu")


@case("manifest")
def intact_board_artifact_without_a_board_runs_on_cpu(env):
    from fpga_gan.runtime import Accelerator

    with Accelerator.open(_board(env)) as acc, Accelerator.open(env.artifacts["dcgan"], backend="cpu") as ref:
        assert acc.backend_name == "cpu"
        z = acc.quantize_input(np.random.default_rng(1).standard_normal((2, 64, 1, 1)))
        assert np.array_equal(acc.run(z), ref.run(z))


@case("manifest")
def board_mismatch_stops_auto(env):
    from .pynq_double import PynqDouble

    art = _board(env)
    env.monkeypatch.setenv("BOARD", "ZCU104")
    packing = json.loads((art / "manifest.json").read_text())["packing"]
    env.monkeypatch.setitem(sys.modules, "pynq", PynqDouble(packing, lambda c: c).module)
    _integrity(env, art, "the board here is ZCU104")


# ------------------------------------------------------------------------------------ deploy

def _deploy_error(env: Env, art: Path, message: str, **kw) -> None:
    env.cli_error(message, "deploy", "dcgan", "--board", "pynq-z2", "--artifact", art, "--samples", "1",
                  "--out", env.tmp / "dist", *(["--cpu-only"] if kw.get("cpu_only", True) else []))
    dist = env.tmp / "dist"
    assert not dist.exists() or not any(dist.iterdir()), "no tarball, not even a partial one"


@case("deploy")
def symlinked_graph(env):
    art = env.artifact()
    (art / "model.qcdq.onnx").unlink()
    (art / "model.qcdq.onnx").symlink_to(env.artifacts["dcgan"] / "model.qcdq.onnx")
    _deploy_error(env, art, "is a symlink")


@case("deploy")
def symlink_to_a_secret(env):
    art = env.artifact()
    (env.tmp / "id_rsa").write_text("secret")
    (art / "README").symlink_to(env.tmp / "id_rsa")
    _deploy_error(env, art, "is a symlink")


@case("deploy")
def symlinked_sub_directory(env):
    art = env.artifact()
    (art / "sim").symlink_to(env.tmp, target_is_directory=True)
    _deploy_error(env, art, "is a symlink")


@case("deploy")
def tampered_board_artifact(env):
    art = _board(env)
    tamper_onnx(art / "model.qcdq.onnx")
    _deploy_error(env, art, "sha256 mismatch", cpu_only=False)


@case("deploy")
def model_json_escaping(env):
    art = _edit_model_json(env.artifact(), lambda m: m["files"].update(extra="../../etc/passwd"))
    _deploy_error(env, art, r"contains '\.\.'")


@case("deploy")
def manifest_not_json(env):
    art = _board(env)
    (art / "manifest.json").write_text("{")
    _deploy_error(env, art, "is not readable JSON", cpu_only=False)


@case("deploy")
def zero_samples(env):
    env.cli_error("--samples must be at least 1", "deploy", "dcgan", "--board", "pynq-z2", "--artifact",
                  env.artifacts["dcgan"], "--samples", "0", "--cpu-only", "--out", env.tmp / "dist")


# ------------------------------------------------------------------------------------ runtime calls

@case("runtime")
def input_of_the_wrong_shape(env):
    from fpga_gan.runtime import Accelerator, InputError

    with Accelerator.open(env.artifacts["dcgan"], backend="cpu") as acc:
        with pytest.raises(InputError, match=r"must have shape \(N, 64, 1, 1\)"):
            acc.run(np.zeros((1, 63, 1, 1), np.int8))


@case("runtime")
def input_codes_out_of_range(env):
    from fpga_gan.runtime import Accelerator, InputError

    with Accelerator.open(env.artifacts["dcgan"], backend="cpu") as acc:
        lo, hi = acc.input_spec.value_range
        with pytest.raises(InputError, match=rf"\[{lo}, {hi}\]"):
            acc.run(np.full((1, 64, 1, 1), hi + 1, np.int32))


@case("runtime")
def pynq_requested_without_a_manifest(env):
    _open_error(env, env.artifacts["dcgan"], "has no manifest.json", backend="pynq")


# ------------------------------------------------------------------------------------ the runner

@pytest.mark.parametrize("name, check", CASES, ids=[name for name, _ in CASES])
def test_bad_input(env, name, check):
    check(env)


def test_the_catalogue_is_large_enough():
    areas = {name.split(":")[0] for name, _ in CASES}
    assert len(CASES) >= 60, len(CASES)
    assert {"checkpoint", "onnx", "image", "data", "compile", "build dir", "artifact", "manifest",
            "deploy", "runtime"} <= areas
