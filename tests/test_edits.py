"""Garment edits with exact ground truth, and the design space of the design generator."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fpga_gan.data import sample_garment_params
from fpga_gan.data.design import DESIGN_CODE_SIZE, design_code, design_codes, sample_designs
from fpga_gan.data.edits import (CONDITION_CHANNELS, CONDITION_LAYOUT, EDIT_TYPES, EditDatasetError, EditError,
                                 apply_edit, condition_codes, edit_from_json, edit_to_json, editor_input,
                                 load_edit_arrays, make_edit_dataset, parse_edit, random_edit, render_params)
from fpga_gan.errors import UserError


def _garment(kind: str, **kw):
    """A garment of ``kind`` from the world's prior (the first seed that draws one)."""
    for seed in range(500):
        g = sample_garment_params(seed)
        if g.kind == kind and all(getattr(g, k) == v for k, v in kw.items()):
            return g
    raise AssertionError(f"no {kind} with {kw} in the first 500 seeds")


def test_parse_edit_reads_colours_choices_and_numbers():
    edit = parse_edit(["colour=#aa3300", "color2=10,20,30", "texture=checks", "period=0.4", "sleeve=short"])
    assert edit == {"colour": (0xAA, 0x33, 0x00), "colour2": (10, 20, 30), "pattern": "checks", "period": 0.4,
                    "sleeve": "short"}
    assert edit_from_json(json.loads(json.dumps(edit_to_json(edit)))) == edit


@pytest.mark.parametrize("settings, words", [
    (["colour"], "key=value"),
    (["shine=high"], "unknown attribute"),
    (["colour=red"], "#rrggbb"),
    (["colour=300,0,0"], "#rrggbb"),
    (["kind=jumper"], "tee"),
    (["length=9"], "outside the range"),
    (["fit=wide"], "not a number"),
    (["period=0.4"], "goes with a pattern"),
    (["kind=tee", "kind=coat"], "twice"),
])
def test_bad_edits_are_user_errors_that_say_what_to_change(settings, words):
    with pytest.raises(EditError, match=words) as info:
        parse_edit(settings)
    assert isinstance(info.value, UserError)


def test_a_kind_edit_keeps_what_the_new_kind_has_and_maps_the_rest():
    shirt = _garment("shirt", sleeve="long")
    coat = apply_edit(shirt, {"kind": "coat"})
    assert (coat.kind, coat.sleeve, coat.neckline) == ("coat", "long", "collar")
    assert 1.35 <= coat.length <= 1.55 and 1.04 <= coat.hem <= 1.14
    assert (coat.colour, coat.pattern, coat.fit) == (shirt.colour, shirt.pattern, shirt.fit)
    tank = apply_edit(coat, {"kind": "tank"})
    assert (tank.sleeve, tank.neckline) == ("none", "round")     # the nearest each kind has


def test_a_sleeve_edit_on_a_top_changes_its_kind_and_is_refused_where_impossible():
    tee = _garment("tee")
    assert apply_edit(tee, {"sleeve": "long"}).kind == "longsleeve"
    assert apply_edit(tee, {"sleeve": "none"}).kind == "tank"
    with pytest.raises(EditError, match="cannot have sleeve=long"):
        apply_edit(_garment("dress"), {"sleeve": "long"})
    with pytest.raises(EditError, match="cannot have neckline=collar"):
        apply_edit(tee, {"neckline": "collar"})


def test_a_new_pattern_is_laid_at_the_canonical_placement():
    g = _garment("tee", pattern="solid")
    striped = apply_edit(g, {"pattern": "hstripes", "period": 0.4, "colour2": (0, 0, 0)})
    assert (striped.pattern, striped.period, striped.phase, striped.duty) == ("hstripes", 0.4, 0.0, 0.45)
    again = apply_edit(replace(g, phase=0.7), {"pattern": "hstripes", "period": 0.4, "colour2": (0, 0, 0)})
    np.testing.assert_array_equal(render_params(striped), render_params(again))


def test_condition_codes_follow_the_layout():
    assert CONDITION_CHANNELS == sum(n for _, n in CONDITION_LAYOUT) == 33
    keep = condition_codes({})
    assert keep.dtype == np.uint8 and not keep.any()
    codes = condition_codes({"colour": (1, 2, 3), "kind": "coat", "length": 1.7, "fit": 0.9})
    assert codes[:4].tolist() == [255, 1, 2, 3]
    offset = {}
    start = 0
    for name, n in CONDITION_LAYOUT:
        offset[name] = start
        start += n
    assert codes[offset["kind"]:offset["kind"] + 6].tolist() == [0, 0, 0, 0, 0, 255]
    assert codes[offset["length"]:offset["length"] + 2].tolist() == [255, 255]
    assert codes[offset["fit"]:offset["fit"] + 2].tolist() == [255, 1]   # "set" codes are never 0
    x = editor_input(np.zeros((2, 3, 64, 64), np.uint8), np.stack([codes, keep]))
    assert x.shape == (2, 36, 64, 64) and (x[0, 3:].reshape(33, -1) == codes[:, None]).all()


def test_random_edits_change_the_garment_and_cover_every_type():
    rng = np.random.default_rng(0)
    seen = set()
    for seed in range(300):
        g = sample_garment_params(seed)
        edit = random_edit(g, rng)
        assert apply_edit(g, edit) != g
        assert not np.array_equal(render_params(g), render_params(apply_edit(g, edit))), edit
        seen.add(next(name for name, _ in EDIT_TYPES if name in edit))
    assert seen == {name for name, _ in EDIT_TYPES}


def test_edit_data_set_layout_is_exact_and_reproducible(tmp_path):
    root = make_edit_dataset(tmp_path / "edits", 12, seed=5, progress=False)
    meta = json.loads((root / "edits.json").read_text())
    assert meta["counts"] == {"train": 11, "test": 1} and meta["size"] == [64, 64]
    train = load_edit_arrays(root, "train")
    assert train["source"].shape == train["target"].shape == (11, 3, 64, 64)
    assert train["condition"].shape == (11, CONDITION_CHANNELS)
    for rec, source, target in zip(train["records"], train["source"], train["target"]):
        g = replace(sample_garment_params(rec["garment_seed"]))
        np.testing.assert_array_equal(source.transpose(1, 2, 0), render_params(g))
        np.testing.assert_array_equal(target.transpose(1, 2, 0), render_params(apply_edit(g, rec["edit"])))
    test = load_edit_arrays(root, "test")
    assert test["records"][0]["garment_seed"] not in {r["garment_seed"] for r in train["records"]}
    again = make_edit_dataset(tmp_path / "again", 12, seed=5, progress=False)
    assert (again / "train" / "edits.jsonl").read_text() == (root / "train" / "edits.jsonl").read_text()


def test_edit_data_set_refuses_to_overwrite_and_bad_folders_are_named(tmp_path):
    root = make_edit_dataset(tmp_path / "edits", 4, seed=1, progress=False)
    with pytest.raises(FileExistsError):
        make_edit_dataset(root, 4, seed=2, progress=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_edit_dataset(mine, 4, overwrite=True, progress=False)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(EditDatasetError, match="edits.jsonl is missing"):
        load_edit_arrays(mine, "train")
    (root / "test" / "edits.jsonl").write_text('{"id": "../../etc", "edit": {}}\n')
    with pytest.raises(EditDatasetError, match="six-digit"):
        load_edit_arrays(root, "test")
    (root / "test" / "edits.jsonl").write_text('{"id": "000003", "edit": {"shine": 1}}\n')
    with pytest.raises(EditDatasetError, match="line 1.*unknown edit attribute"):
        load_edit_arrays(root, "test")


def test_design_codes_are_the_garment_in_minus_one_to_one():
    g = sample_garment_params(3)
    code = design_code(g)
    assert code.shape == (DESIGN_CODE_SIZE,) and code.dtype == np.float32
    assert code.min() >= -1 and code.max() <= 1
    assert design_codes([g, g]).shape == (2, DESIGN_CODE_SIZE, 1, 1)
    assert not np.array_equal(code, design_code(sample_garment_params(4)))


def test_sampled_designs_are_seeded_and_honour_fixed_attributes():
    a, b = sample_designs(20, seed=3), sample_designs(20, seed=3)
    assert a == b and a != sample_designs(20, seed=4)
    dresses = sample_designs(20, seed=3, fixed={"sleeve": "three_quarter"})
    assert all(g.sleeve == "three_quarter" and g.kind == "dress" for g in dresses)
    with pytest.raises(ValueError):
        sample_designs(0)


def test_a_several_attribute_edit_runs_as_trained_single_edits_shape_first():
    from fpga_gan.data.edits import edit_steps

    steps = edit_steps({"colour": (1, 2, 3), "sleeve": "short", "pattern": "checks", "period": 0.4,
                        "colour2": (9, 9, 9), "kind": "shirt"})
    assert steps == [{"kind": "shirt"}, {"sleeve": "short"},
                     {"pattern": "checks", "period": 0.4, "colour2": (9, 9, 9)}, {"colour": (1, 2, 3)}]
    assert edit_steps({"colour2": (9, 9, 9)}) == [{"colour2": (9, 9, 9)}]
    with pytest.raises(EditError, match="a coat cannot have sleeve=none"):
        edit_steps({"kind": "coat", "sleeve": "none"})


def test_a_new_texture_is_a_pattern_edit_even_when_it_names_its_second_colour():
    from fpga_gan.data.edits import edit_type

    assert edit_type({"pattern": "hstripes", "period": 0.4, "colour2": (1, 2, 3)}) == "pattern"
    assert edit_type({"colour2": (1, 2, 3)}) == "colour2"
