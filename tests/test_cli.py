"""The fpga-gan command line, end to end on the shipped weights and a small synthetic data set."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fpga_gan.cli import main


@pytest.fixture()
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts go to ./build/artifacts

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_data_make_is_atomic_and_refuses_to_overwrite(run, tmp_path):
    result = run("data", "make", "--out", "d", "--n", "8", "--seed", "3", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "train_pairs.txt").is_file()
    again = run("data", "make", "--out", "d", "--n", "8")
    assert again.exit_code == 2 and "d" in again.output
    bad = run("data", "make", "--out", "e", "--n", "8", "--size", "64by48")
    assert bad.exit_code == 2 and "HxW" in bad.output


def test_tryon_one_pair_and_many(run, tmp_path, small_dataset):
    from fpga_gan.data import TryOnDataset

    person, cloth = TryOnDataset(small_dataset, "test").pairs[0]
    one = run("tryon", "--data", str(small_dataset), "--person", person, "--cloth", cloth, "-o", "out.png")
    assert one.exit_code == 0, one.output
    img = np.asarray(Image.open(tmp_path / "out.png"))
    assert img.shape == (64, 48, 3) and img.std() > 10

    many = run("tryon", "--data", str(small_dataset), "--pairs", str(small_dataset / "test_pairs.txt"),
               "--out-dir", "many")
    assert many.exit_code == 0, many.output
    n_pairs = len(TryOnDataset(small_dataset, "test"))
    assert len(list((tmp_path / "many").glob("*.png"))) == n_pairs


def test_tryon_errors_name_the_problem(run, small_dataset):
    missing = run("tryon", "--data", str(small_dataset), "--person", "nobody.png", "--cloth", "x.png",
                  "-o", "o.png")
    assert missing.exit_code == 2 and "nobody.png" in missing.output
    no_data = run("tryon", "--data", "nowhere", "--person", "a.png", "--cloth", "b.png", "-o", "o.png")
    assert no_data.exit_code == 2 and "nowhere" in no_data.output
    usage = run("tryon", "--data", str(small_dataset))
    assert usage.exit_code == 2 and "--person" in usage.output
    wrong_backend = run("tryon", "--data", str(small_dataset), "--person", "a.png", "--cloth", "b.png",
                        "-o", "o.png", "--backend", "fpga")
    assert wrong_backend.exit_code == 2 and "unknown backend 'fpga'" in wrong_backend.output


def test_design_sample_writes_a_grid_of_the_designs_asked_for(run, tmp_path):
    result = run("design", "sample", "-n", "4", "-o", "g.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "g.png").size[0] > 64
    fixed = run("design", "sample", "-n", "3", "--columns", "3", "-o", "dresses.png", "--set", "kind=dress",
                "--seed", "5")
    assert fixed.exit_code == 0, fixed.output
    assert np.asarray(Image.open(tmp_path / "dresses.png")).shape == (2 * 66, 3 * 2 * 66, 3)


def test_design_edit_equals_the_editor_run_through_the_runtime(run, tmp_path):
    from fpga_gan.app import run_edits
    from fpga_gan.artifacts import zoo_artifact
    from fpga_gan.data import render_garment
    from fpga_gan.data.edits import parse_edit
    from fpga_gan.runtime import Accelerator

    garment = render_garment(31)[0]
    Image.fromarray(garment).save(tmp_path / "shirt.png")
    Image.fromarray(garment).resize((128, 128)).save(tmp_path / "big.png")
    result = run("design", "edit", "--cloth", "shirt.png", "--set", "colour=#aa3300", "--set", "pattern=checks",
                 "-o", "out.png")
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    with Accelerator.open(zoo_artifact("editor"), backend="cpu") as acc:
        expected = run_edits(acc, garment[None], [parse_edit(["colour=#aa3300", "pattern=checks"])])[0]
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, garment)
    resized = run("design", "edit", "--cloth", "big.png", "--set", "kind=coat", "-o", "coat.png")
    assert resized.exit_code == 0 and np.asarray(Image.open(tmp_path / "coat.png")).shape == (64, 64, 3)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    junk = run("design", "edit", "--cloth", "junk.png", "--set", "kind=coat", "-o", "j.png")
    assert junk.exit_code == 2 and "cannot read garment image" in junk.output and not (tmp_path / "j.png").exists()
    wrong = run("design", "edit", "--cloth", "shirt.png", "--set", "sleeve=none", "--set", "kind=coat", "-o", "x.png")
    assert wrong.exit_code == 2 and "a coat cannot have sleeve=none" in wrong.output


def test_export_reports_bit_exactness(run, tmp_path):
    result = run("export", "dcgan", "-o", "art", "--check", "8")
    assert result.exit_code == 0, result.output
    assert "BIT-EXACT" in result.output and (tmp_path / "art" / "model.json").is_file()
    unknown = run("export", "pix2pix", "-o", "x")
    assert unknown.exit_code == 2 and "pix2pix" in unknown.output


def test_demo_writes_both_pictures(run, tmp_path):
    result = run("demo", "--out", "demo", "--pairs", "3")
    assert result.exit_code == 0, result.output
    for name in ("tryon.png", "edits.png", "designs.png"):
        assert (tmp_path / "demo" / name).is_file()
    assert "SSIM" in result.output
