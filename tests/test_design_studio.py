"""The design studio: attribute classifier and judge, Frechet distance, the editor and designer
training loops, and the shipped studio models behind `fpga-gan design`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fpga_gan.data import sample_garment_params
from fpga_gan.data.edits import apply_edit, make_edit_dataset, render_params
from fpga_gan.models.attributes import (NOT_A_GARMENT, AttributeReading, attribute_matches, judge_edit,
                                        judged_attributes)
from fpga_gan.train.design_eval import frechet_distance


def _reading_of(g, **changes) -> AttributeReading:
    """The reading a perfect classifier gives for ``g``, with ``changes``."""
    fields = {"kind": g.kind, "kind_confidence": 0.99, "sleeve": g.sleeve, "neckline": g.neckline,
              "pattern": g.pattern, "colour": g.colour, "colour2": g.colour2, "length": g.length, "fit": g.fit,
              "period": g.period}
    return AttributeReading(**{**fields, **changes})


def _solid_tee():
    for seed in range(500):
        g = sample_garment_params(seed)
        if g.kind == "tee" and g.pattern == "solid":
            return g
    raise AssertionError("no solid tee")


def test_judge_compares_only_what_the_garment_shows_within_tolerance():
    g = _solid_tee()
    assert "colour2" not in judged_attributes(g) and "period" not in judged_attributes(g)
    assert all(attribute_matches(_reading_of(g), g).values())
    near = _reading_of(g, colour=tuple(min(255, c + 10) for c in g.colour), length=g.length + 0.03)
    assert all(attribute_matches(near, g).values())
    far = attribute_matches(_reading_of(g, colour=tuple(255 - c for c in g.colour), kind="coat"), g)
    assert not far["colour"] and not far["kind"] and far["sleeve"]


def test_judge_of_an_edit_separates_requested_coupled_and_untouched_attributes():
    g = _solid_tee()
    target = apply_edit(g, {"kind": "coat"})           # coupled: sleeve, neckline, length change too
    verdict = judge_edit(_reading_of(target), g, target, {"kind": "coat"})
    assert verdict["requested_ok"] and set(verdict["requested"]) == {"kind"}
    assert {"sleeve", "neckline", "length"}.isdisjoint(verdict["untouched"])
    assert {"colour", "pattern", "fit"} <= set(verdict["untouched"]) and all(verdict["untouched"].values())
    unchanged = judge_edit(_reading_of(g), g, target, {"kind": "coat"})    # the editor did nothing
    assert not unchanged["requested_ok"]
    recoloured = judge_edit(_reading_of(target, colour=(0, 0, 0) if sum(g.colour) > 300 else (255, 255, 255)),
                            g, target, {"kind": "coat"})
    assert recoloured["requested_ok"] and not recoloured["untouched"]["colour"]


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 8))
    b = rng.standard_normal((500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near, far = frechet_distance(a, b), frechet_distance(a, b + 2.0)
    assert 0 < near < 1.0 < far and far == pytest.approx(32.0, rel=0.1)


def _interrupt_after_first_checkpoint(monkeypatch, module) -> None:
    """The run stops right after it wrote its first checkpoint (the loss plot comes next)."""

    def stop(*_args) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "plot_losses", stop)


def test_attribute_classifier_trains_resumes_and_rejects_noise(tmp_path, monkeypatch):
    from fpga_gan.train import attributes
    from fpga_gan.train.attributes import AttributeTrainConfig, load_classifier, not_garments, train_attributes

    cfg = AttributeTrainConfig(out=str(tmp_path / "run"), garments=64, steps=6, batch=16, width=8,
                               eval_garments=16, checkpoint_every=3, threads=1)
    with monkeypatch.context() as m:
        _interrupt_after_first_checkpoint(m, attributes)
        with pytest.raises(KeyboardInterrupt):
            train_attributes(cfg)
    resumed = train_attributes(cfg, resume=True)
    straight = train_attributes(replace(cfg, out=str(tmp_path / "straight")))
    assert resumed["held_out"] == straight["held_out"] and straight["held_out"]["garments"] == 16
    net = load_classifier(tmp_path / "run" / "attributes.pt")
    same = load_classifier(tmp_path / "straight" / "attributes.pt")
    for (k, a), b in zip(net.state_dict().items(), same.state_dict().values()):
        assert torch.equal(a, b), k
    images = np.stack([render_params(sample_garment_params(s)) for s in range(8)]).transpose(0, 3, 1, 2)
    fakes = not_garments(images, np.random.default_rng(0))
    assert fakes.shape == images.shape and fakes.dtype == np.uint8 and not np.array_equal(fakes, images)


def test_shipped_classifier_reads_unseen_rendered_garments():
    """The judge itself, on garments no model trained on (half of them edited). Its class readings
    are near perfect; its colour readings have a tail (about 90% of main and 80% of second colours
    within an RGB distance of 48), which caps every colour figure the design studio reports."""
    from fpga_gan.models.attributes import read_attributes
    from fpga_gan.train.attributes import evaluate_classifier, load_classifier

    metrics = evaluate_classifier(load_classifier(), 200, seed=4242)
    floors = {"kind": 0.97, "sleeve": 0.97, "neckline": 0.97, "pattern": 0.97, "period": 0.95, "length": 0.95,
              "fit": 0.95, "colour": 0.85, "colour2": 0.7}
    low = {a: v for a, v in metrics["agreement"].items() if v < floors[a]}
    assert not low, f"the classifier misreads rendered garments: {low}"
    assert metrics["confident_garment_kind"] >= 0.95 and metrics["non_garments_rejected"] >= 0.95
    noise = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert all(r.kind == NOT_A_GARMENT for r in read_attributes(load_classifier(), noise)[0])


def test_editor_trains_on_an_edit_data_set_with_the_unet_loop(tmp_path):
    from fpga_gan.models.zoo import load_generator
    from fpga_gan.train import TryOnTrainConfig, train_tryon

    data = make_edit_dataset(tmp_path / "edits", 24, seed=2, progress=False)
    cfg = TryOnTrainConfig(data=str(data), out=str(tmp_path / "run"), steps=2, batch=4, widths=(4, 8, 8, 8),
                           size=(64, 64), eval_limit=4, eval_every=2, checkpoint_every=2, threads=1,
                           learned_act_scale=True)
    result = train_tryon(cfg)
    assert result["model"] == "editor" and result["held_out"]["images"] == 2     # the test split
    gen = load_generator(tmp_path / "run" / "generator.pt")
    assert gen.in_channels == 36 and gen.image_size == (64, 64) and gen.straight_through_output
    with pytest.raises(ValueError, match="64x64 garments, but --size is 64x48"):
        train_tryon(replace(cfg, size=(64, 48), out=str(tmp_path / "other")))


def test_designer_trains_and_resumes_exactly(tmp_path, monkeypatch):
    from fpga_gan.models.zoo import load_generator
    from fpga_gan.train import designer
    from fpga_gan.train.designer import DesignerTrainConfig, train_designer

    cfg = DesignerTrainConfig(out=str(tmp_path / "run"), garments=32, steps=4, batch=8, ngf=4, eval_garments=8,
                              checkpoint_every=2, threads=1, learned_act_scale=True)
    with monkeypatch.context() as m:
        _interrupt_after_first_checkpoint(m, designer)
        with pytest.raises(KeyboardInterrupt):
            train_designer(cfg)
    resumed = train_designer(cfg, resume=True)
    straight = train_designer(replace(cfg, out=str(tmp_path / "straight")))
    assert resumed["held_out"] == straight["held_out"]
    a, b = (load_generator(tmp_path / d / "generator.pt") for d in ("run", "straight"))
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k


def test_design_evaluate_scores_editors_and_generators_and_refuses_the_wrong_model(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from fpga_gan.cli import main
    from fpga_gan.models.zoo import zoo_path

    monkeypatch.chdir(tmp_path)
    make_edit_dataset(tmp_path / "edits", 40, seed=9, progress=False)
    args = ["design", "evaluate", "--data", "edits", "--samples", "24", "--out", "r.json", "--threads", "1"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    truth = report["editor"]["rendered targets"]["overall"]
    assert truth["edits"] == 4 and truth["ssim"] == 1.0
    assert set(report["editor"]) == {"rendered targets", "editor_w4a4.pt", "editor_float.pt"}
    assert set(report["designer"]) == {"rendered garments", "designer_w4a4.pt", "designer_float.pt", "dcgan_w4a4.pt",
                                       "dcgan_float.pt"}
    assert "| editor_w4a4.pt | 4 |" in (tmp_path / "r.md").read_text()
    wrong = CliRunner().invoke(main, [*args, "--editor", str(zoo_path("tryon"))])
    assert wrong.exit_code == 2 and "not a garment editor" in wrong.output
