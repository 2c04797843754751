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


def test_design_writes_a_grid(run, tmp_path):
    result = run("design", "-n", "4", "-o", "g.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "g.png").size[0] > 64


def test_export_reports_bit_exactness(run, tmp_path):
    result = run("export", "dcgan", "-o", "art", "--check", "8")
    assert result.exit_code == 0, result.output
    assert "BIT-EXACT" in result.output and (tmp_path / "art" / "model.json").is_file()
    unknown = run("export", "pix2pix", "-o", "x")
    assert unknown.exit_code == 2 and "pix2pix" in unknown.output


def test_demo_writes_both_pictures(run, tmp_path):
    result = run("demo", "--out", "demo", "--pairs", "3")
    assert result.exit_code == 0, result.output
    for name in ("tryon.png", "designs.png"):
        assert (tmp_path / "demo" / name).is_file()
    assert "SSIM" in result.output
