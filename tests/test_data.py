"""Tests for fpga_gan.data: the synthetic try-on world and the VITON-HD layout loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpga_gan.data import (
    BODY25_TO_COCO18,
    TRYON_IN_CHANNELS,
    DatasetError,
    TryOnDataset,
    load_arrays,
    make_dataset,
    pose_heatmaps,
    render_garment,
    render_sample,
    render_tryon,
    sample_garment_params,
    sample_seed,
    tryon_input,
    align_cloth,
)
from fpga_gan.data import synth

IMAGE_FIELDS = ("person", "cloth", "agnostic")


def _assert_same_sample(a, b) -> None:
    for f in IMAGE_FIELDS + ("cloth_mask", "keypoints"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


# ----------------------------------------------------------------------------------------------
# Synthetic world


def test_render_is_deterministic_and_seed_dependent():
    _assert_same_sample(render_sample(3), render_sample(3))
    a, b = render_sample(3), render_sample(4)
    assert not np.array_equal(a.person, b.person)
    assert not np.array_equal(a.cloth, b.cloth)


def test_render_sample_equals_paired_tryon():
    for s in (0, 7):
        _assert_same_sample(render_sample(s), render_tryon(s, s))


@pytest.mark.parametrize("size", [(64, 48), (128, 96), (32, 32)])
def test_shapes_and_dtypes(size):
    H, W = size
    s = render_sample(11, size)
    for f in IMAGE_FIELDS:
        arr = getattr(s, f)
        assert arr.shape == (H, W, 3) and arr.dtype == np.uint8, f
    assert s.cloth_mask.shape == (H, W) and s.cloth_mask.dtype == np.uint8
    assert set(np.unique(s.cloth_mask)) <= {0, 255}
    assert (s.cloth_mask == 255).mean() > 0.1
    assert s.keypoints.shape == (18, 3) and s.keypoints.dtype == np.float32
    visible = s.keypoints[s.keypoints[:, 2] > 0]
    assert len(visible) >= 14
    assert (visible[:, 0] >= 0).all() and (visible[:, 0] <= W - 1).all()
    assert (visible[:, 1] >= 0).all() and (visible[:, 1] <= H - 1).all()


def test_too_small_size_rejected():
    with pytest.raises(ValueError):
        render_sample(0, (16, 12))


def test_keypoints_are_anatomically_ordered():
    kp = render_sample(5).keypoints
    nose, neck, r_sho, l_sho, r_hip, r_knee, r_ank = kp[[0, 1, 2, 5, 8, 9, 10], :2]
    assert nose[1] < neck[1] < r_hip[1] < r_knee[1] < r_ank[1]
    assert r_sho[0] < neck[0] < l_sho[0]        # person's right is the image's left


def test_agnostic_does_not_depend_on_garment():
    for p in (0, 1, 2, 9):
        a = render_tryon(p, 100).agnostic
        for g in (101, 102, 103):
            np.testing.assert_array_equal(a, render_tryon(p, g).agnostic)


def test_agnostic_greys_the_clothing_region():
    s = render_sample(2)
    grey = np.all(s.agnostic == 128, axis=-1)
    assert grey.mean() > 0.03
    neck_x, neck_y = s.keypoints[1, :2]
    hip_y = s.keypoints[8, 1]
    assert grey[int((neck_y + hip_y) / 2), int(neck_x)]          # mid torso is hidden
    nose_x, nose_y = s.keypoints[0, :2]
    assert not grey[int(nose_y), int(nose_x)]                    # the face is kept


def _first_seed(pred) -> int:
    return next(s for s in range(1000) if pred(sample_garment_params(s)))


def test_solid_garment_colour_shows_up_in_target_and_not_in_agnostic():
    def distinct(seed: int) -> bool:      # a solid colour that neither the grey nor the scene has
        g, p = sample_garment_params(seed), synth.sample_person_params(seed)
        others = [(128, 128, 128), p.bg_colour, p.bg_colour2, p.skin, p.legwear, p.hair_colour]
        return g.pattern == "solid" and min(np.linalg.norm(np.subtract(g.colour, o)) for o in others) > 90

    s = render_sample(next(s for s in range(1000) if distinct(s)))
    colour = np.asarray(s.garment_params.colour, float)
    near = np.linalg.norm(s.person.astype(float) - colour, axis=-1) < 40
    near_agn = np.linalg.norm(s.agnostic.astype(float) - colour, axis=-1) < 40
    near_cloth = np.linalg.norm(s.cloth.astype(float) - colour, axis=-1) < 40
    assert near.sum() >= 40
    assert near_cloth.sum() >= 200
    assert near_agn.sum() < near.sum() / 4


def test_pattern_colours_appear_in_cloth_and_target():
    seed = _first_seed(lambda g: g.pattern == "hstripes")
    s = render_sample(seed, (128, 96))
    for colour in (s.garment_params.colour, s.garment_params.colour2):
        c = np.asarray(colour, float)
        for img in (s.cloth, s.person):
            assert (np.linalg.norm(img.astype(float) - c, axis=-1) < 45).sum() >= 20


def test_all_garment_kinds_render():
    kinds = {}
    for s in range(200):
        kinds.setdefault(sample_garment_params(s).kind, s)
    assert set(kinds) == set(synth.GARMENT_KINDS)
    for seed in kinds.values():
        img, mask = render_garment(seed)
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert 0.1 < (mask == 255).mean() < 0.9
        assert np.median(img[mask == 0]) >= 238          # near-white in-shop background
        assert img[:2, :2].min() >= 238 and img[-2:, -2:].min() >= 238


def test_render_garment_matches_sample_cloth():
    img, mask = render_garment(21, (64, 48))
    s = render_sample(21)
    np.testing.assert_array_equal(img, s.cloth)
    np.testing.assert_array_equal(mask, s.cloth_mask)


# ----------------------------------------------------------------------------------------------
# Packing


def test_pose_heatmaps():
    kp = np.zeros((18, 3), np.float32)
    kp[0] = (10, 20, 1.0)
    kp[3] = (40, 5, 1.0)
    hm = pose_heatmaps(kp, (64, 48))
    assert hm.shape == (18, 64, 48) and hm.dtype == np.uint8
    assert hm[0, 20, 10] == 255 and hm[3, 5, 40] == 255
    assert hm[1].max() == 0                       # confidence 0: empty channel
    assert hm[0, 20, 13] < 60                     # sigma ~ 1.5 px at 64x48
    assert pose_heatmaps(kp * [2, 2, 1], (128, 96))[0, 20 * 2, 10 * 2 + 6] == hm[0, 20, 13]


def test_tryon_input_packing():
    s = render_sample(4)
    hm = pose_heatmaps(s.keypoints, (64, 48))
    x = tryon_input(s.agnostic, hm, s.cloth)
    assert x.shape == (TRYON_IN_CHANNELS, 64, 48) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:3], s.agnostic.transpose(2, 0, 1))
    np.testing.assert_array_equal(x[3:21], hm)
    np.testing.assert_array_equal(x[21:], s.cloth.transpose(2, 0, 1))
    aligned = align_cloth(s.cloth, s.cloth_mask, s.keypoints)
    np.testing.assert_array_equal(tryon_input(s), tryon_input(s.agnostic, hm, aligned))  # item form
    with pytest.raises(ValueError):
        tryon_input(s.agnostic, hm[:17], s.cloth)


def test_align_cloth_puts_the_garment_on_the_torso():
    s = render_sample(6)
    aligned = align_cloth(s.cloth, s.cloth_mask, s.keypoints)
    covered = aligned.any(axis=-1)
    neck, r_hip, l_hip = s.keypoints[1, :2], s.keypoints[8, :2], s.keypoints[11, :2]
    cx, cy = (neck + (r_hip + l_hip) / 2) / 2
    assert covered[int(cy), int(cx)]                              # mid torso has garment
    assert not covered[: int(s.keypoints[0, 1])].any()            # nothing above the nose
    no_pose = s.keypoints.copy()
    no_pose[2, 2] = 0                                             # a shoulder not detected
    assert not align_cloth(s.cloth, s.cloth_mask, no_pose).any()


def test_align_cloth_fits_every_garment_kind_to_the_body_width():
    """The worn garment body is about one shoulder span wide (its fit is 0.95-1.16). Measuring the
    in-shop top edge instead would make sleeved garments ~25% too narrow and tanks ~50% too wide."""
    ratios: dict[str, list[float]] = {}
    for seed in range(60):
        s = render_sample(seed)
        kp = s.keypoints
        mid_torso = int(round(kp[1, 1] + 0.5 * ((kp[8, 1] + kp[11, 1]) / 2 - kp[1, 1])))
        row = align_cloth(s.cloth, s.cloth_mask, kp).any(axis=-1)[mid_torso]
        centre = int(kp[1, 0])
        assert row[centre], f"seed {seed}: no garment at mid torso"
        left, right = centre, centre
        while left > 0 and row[left - 1]:
            left -= 1
        while right < len(row) - 1 and row[right + 1]:
            right += 1
        span = abs(kp[5, 0] - kp[2, 0])
        ratios.setdefault(s.garment_params.kind, []).append((right - left + 1) / span)
    assert len(ratios) >= 5                                       # most garment kinds were drawn
    for kind, r in ratios.items():
        assert 0.9 <= min(r) and max(r) <= 1.3, (kind, min(r), max(r))


# ----------------------------------------------------------------------------------------------
# Data set writer


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset12(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "one", 12, seed=0, workers=1, progress=False)


def test_make_dataset_layout(dataset12):
    root = dataset12
    for split in ("train", "test"):
        for sub in ("image", "cloth", "cloth-mask", "agnostic-v3.2", "openpose_json"):
            assert (root / split / sub).is_dir()
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["n"] == 12 and meta["seed"] == 0 and meta["size"] == [64, 48]
    assert meta["counts"]["train"] + meta["counts"]["test"] == 12
    train = [l.split() for l in (root / "train_pairs.txt").read_text().splitlines()]
    test = [l.split() for l in (root / "test_pairs.txt").read_text().splitlines()]
    assert len(train) == meta["counts"]["train"] and len(test) == meta["counts"]["test"] >= 2
    assert all(a == b for a, b in train) and train[0] == ["000000_00.png", "000000_00.png"]
    assert all(a != b for a, b in test)                                   # unpaired
    assert sorted(b for _, b in test) == sorted(a for a, _ in test)        # a derangement
    for a, b in test:
        assert (root / "test" / "tryon-gt" / f"{Path(a).stem}__{Path(b).stem}.png").is_file()
    kp = json.loads((root / "train" / "openpose_json" / "000003_00_keypoints.json").read_text())
    assert kp["version"] == 1.3 and len(kp["people"][0]["pose_keypoints_2d"]) == 54
    img = Image.open(root / "train" / "image" / "000003_00.png")
    assert img.size == (48, 64) and img.format == "PNG"
    assert not list(root.parent.glob(".*partial*"))


def test_make_dataset_worker_count_does_not_change_bytes(dataset12, tmp_path):
    two = make_dataset(tmp_path / "two", 12, seed=0, workers=2, progress=False)
    assert _tree_bytes(dataset12) == _tree_bytes(two)


def test_dataset_round_trips_through_loader(dataset12):
    ds = TryOnDataset(dataset12, "train")
    item = ds[3]
    ref = render_sample(sample_seed(0, 3))
    np.testing.assert_array_equal(item.person, ref.person)
    np.testing.assert_array_equal(item.agnostic, ref.agnostic)
    np.testing.assert_array_equal(item.cloth_mask, ref.cloth_mask)
    np.testing.assert_allclose(item.keypoints, ref.keypoints, atol=1e-3)
    np.testing.assert_array_equal(item.target, ref.person)
    test = TryOnDataset(dataset12, "test")
    assert test.has_target
    it = test[0]
    p, c = (int(Path(n).stem.split("_")[0]) for n in (it.person_name, it.cloth_name))
    gt = render_tryon(sample_seed(0, p), sample_seed(0, c))
    np.testing.assert_array_equal(it.target, gt.person)
    np.testing.assert_array_equal(it.cloth, gt.cloth)
    arrays = load_arrays(dataset12, "test")
    assert arrays["x"].shape == (len(test), 24, 64, 48) and arrays["y"].shape == (len(test), 3, 64, 48)
    assert arrays["x"].dtype == np.uint8 and arrays["y"].dtype == np.uint8
    assert load_arrays(dataset12, "train", limit=4)["x"].shape[0] == 4


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_make_dataset_failure_leaves_nothing(tmp_path, monkeypatch, exc):
    bad_seed = sample_seed(0, 5)
    real = synth.render_tryon

    def failing(person_seed, garment_seed, size=(64, 48)):
        if person_seed == bad_seed:
            raise exc("boom")
        return real(person_seed, garment_seed, size)

    monkeypatch.setattr(synth, "render_tryon", failing)
    out = tmp_path / "ds"
    with pytest.raises(exc):
        make_dataset(out, 12, seed=0, workers=1, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_make_dataset_refuses_non_empty_dir(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        make_dataset(out, 4, workers=1, progress=False)
    assert (out / "keep.txt").exists()
    # --overwrite replaces only a data set we wrote: this directory carries no marker
    with pytest.raises(FileExistsError, match="no .fpga_gan marker"):
        make_dataset(out, 4, workers=1, progress=False, overwrite=True)
    assert (out / "keep.txt").read_text() == "x"
    (out / "keep.txt").unlink()
    make_dataset(out, 4, workers=1, progress=False)            # empty: fine
    make_dataset(out, 4, seed=1, workers=1, progress=False, overwrite=True)   # ours: replaced
    assert json.loads((out / "dataset.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ----------------------------------------------------------------------------------------------
# Loader on a hand-made VITON-HD style sample (256x192, JPEG, BODY_25)


def _body25(offset: float) -> list[float]:
    vals = []
    for b in range(25):
        conf = 0.0 if b == 16 else 0.9          # l-eye undetected
        vals += [8.0 * b + offset, 10.0 * b + 3.0, conf]
    return vals


@pytest.fixture()
def viton_root(tmp_path) -> Path:
    root = tmp_path / "viton"
    d = root / "test"
    for sub in ("image", "cloth", "cloth-mask", "agnostic-v3.2", "openpose_json"):
        (d / sub).mkdir(parents=True)
    colours = {"00001_00": (200, 40, 40), "00002_00": (40, 40, 200)}
    for i, (stem, colour) in enumerate(colours.items()):
        Image.new("RGB", (192, 256), colour).save(d / "image" / f"{stem}.jpg", quality=95)
        Image.new("RGB", (192, 256), colour[::-1]).save(d / "cloth" / f"{stem}.jpg", quality=95)
        mask = np.zeros((256, 192), np.uint8)
        mask[64:192, 48:144] = 255
        Image.fromarray(mask).save(d / "cloth-mask" / f"{stem}.jpg", quality=95)
        Image.new("RGB", (192, 256), (128, 128, 128)).save(d / "agnostic-v3.2" / f"{stem}.png")
        (d / "openpose_json" / f"{stem}_keypoints.json").write_text(json.dumps(
            {"version": 1.3, "people": [{"pose_keypoints_2d": _body25(4.0 * i)}]}))
    (root / "test_pairs.txt").write_text("00001_00.jpg 00001_00.jpg\n00002_00.jpg 00001_00.jpg\n")
    return root


def test_loader_resizes_and_maps_body25(viton_root):
    ds = TryOnDataset(viton_root, "test", size=(64, 48))
    assert len(ds) == 2 and not ds.has_target
    item = ds[0]
    assert item.person.shape == (64, 48, 3) and item.person.dtype == np.uint8
    assert np.abs(item.person.astype(int) - (200, 40, 40)).max() <= 6
    assert np.abs(item.cloth.astype(int) - (40, 40, 200)).max() <= 6
    assert set(np.unique(item.cloth_mask)) == {0, 255}
    assert item.cloth_mask[32, 24] == 255 and item.cloth_mask[5, 5] == 0
    assert (item.cloth_mask == 255).mean() == pytest.approx(0.25, abs=0.03)
    np.testing.assert_array_equal(item.agnostic, 128)           # PNG named .jpg in pairs: fallback
    assert item.keypoints.shape == (18, 3) and item.keypoints.dtype == np.float32
    for k, b in enumerate(BODY25_TO_COCO18):
        if b == 16:
            np.testing.assert_array_equal(item.keypoints[k], 0)
            assert item.heatmaps[k].max() == 0
        else:
            np.testing.assert_allclose(item.keypoints[k], [8.0 * b / 4, (10.0 * b + 3) / 4, 0.9], rtol=1e-6)
    assert item.keypoints[8, 0] == pytest.approx(8.0 * 9 / 4)    # COCO r-hip is BODY_25 9, not mid-hip
    assert item.heatmaps.shape == (18, 64, 48)
    np.testing.assert_array_equal(item.target, item.person)      # paired: the person is the target
    unpaired = ds[1]
    assert unpaired.target is None and unpaired.person_name == "00002_00.jpg"
    assert unpaired.keypoints[0, 0] == pytest.approx(1.0)          # offset 4 px / 4
    assert tryon_input(unpaired).shape == (24, 64, 48)
    assert load_arrays(viton_root, "test")["y"] is None


def test_loader_reads_tryon_gt(viton_root):
    gt = viton_root / "test" / "tryon-gt"
    gt.mkdir()
    Image.new("RGB", (192, 256), (10, 200, 10)).save(gt / "00002_00__00001_00.png")
    ds = TryOnDataset(viton_root, "test", size=(128, 96))
    assert ds.has_target
    assert ds[1].target.shape == (128, 96, 3)
    np.testing.assert_array_equal(ds[1].target, np.broadcast_to([10, 200, 10], (128, 96, 3)))
    assert ds[1].keypoints[5, 1] == pytest.approx((10.0 * 5 + 3) / 2)


def test_loader_errors_name_the_culprit(viton_root):
    with pytest.raises(DatasetError, match="root not found"):
        TryOnDataset(viton_root / "nope", "test")
    with pytest.raises(DatasetError, match="split directory"):
        TryOnDataset(viton_root, "train")
    (viton_root / "train").mkdir()
    with pytest.raises(DatasetError, match="train_pairs.txt"):
        TryOnDataset(viton_root, "train")

    d = viton_root / "test"
    missing = d / "cloth" / "00001_00.jpg"
    missing.unlink()
    with pytest.raises(DatasetError, match="missing image file") as e:
        TryOnDataset(viton_root, "test")[0]
    assert str(missing) in str(e.value)

    corrupt = d / "image" / "00002_00.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(DatasetError, match="cannot read image") as e:
        TryOnDataset(viton_root, "test")[1]
    assert str(corrupt) in str(e.value)

    bad_pairs = viton_root / "bad_pairs.txt"
    bad_pairs.write_text("00001_00.jpg 00001_00.jpg extra\n")
    with pytest.raises(DatasetError, match="bad_pairs.txt:1"):
        TryOnDataset(viton_root, "test", pairs_file=bad_pairs)

    Image.new("RGB", (192, 256)).save(d / "cloth" / "00001_00.jpg")
    (d / "openpose_json" / "00001_00_keypoints.json").write_text(json.dumps({"version": 1.3, "people": []}))
    with pytest.raises(DatasetError, match="00001_00_keypoints.json"):
        TryOnDataset(viton_root, "test")[0]
    (d / "openpose_json" / "00001_00_keypoints.json").unlink()
    with pytest.raises(DatasetError, match="missing keypoint file"):
        TryOnDataset(viton_root, "test")[0]
    with pytest.raises(IndexError):
        TryOnDataset(viton_root, "test")[2]
