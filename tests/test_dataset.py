"""Building the quality data set: a stratified, reproducible split; unreadable frames skipped and
reported; cached tensors from the site's own preprocessing; augmentation that keeps the physics
(and the label) of a frame."""

from pathlib import Path

import numpy as np
import pytest

from imaging.fits_reader import read_frame
from imaging.preprocess import INPUT_SHAPE, PANEL_PX, asinh_stretch, preprocess_frame
from imaging.verdict import CLASS_ORDER, image_grade
from training.dataset import (
    SPLIT_NAMES,
    LabelledArrays,
    QualityTensorDataset,
    augment_mosaic,
    build_dataset,
    load_split,
    sigmas_above_background,
    stratified_split,
)
from training.quality_net import CLASS_NAMES
from training.simulator.camera import SimCamera
from training.simulator.dataset import write_labelled_set
from training.simulator.fitsio import read_truth


def _labels(per_class: tuple[int, ...]) -> np.ndarray:
    return np.repeat(np.arange(len(per_class)), per_class)


def test_split_keeps_class_proportions_in_every_split():
    labels = _labels((200, 120, 80))
    splits = stratified_split(labels, seed=1)
    for split, fraction in zip(SPLIT_NAMES, (0.70, 0.15, 0.15), strict=True):
        counts = np.bincount(labels[splits[split]], minlength=3)
        np.testing.assert_allclose(counts, np.array([200, 120, 80]) * fraction, atol=1)


def test_split_uses_every_frame_exactly_once():
    labels = _labels((17, 9, 4))
    splits = stratified_split(labels, seed=3)
    together = np.concatenate([splits[name] for name in SPLIT_NAMES])
    assert sorted(together.tolist()) == list(range(len(labels)))
    for name in ("val", "test"):
        assert set(labels[splits[name]].tolist()) == {0, 1, 2}


def test_split_is_reproducible_and_depends_on_the_seed():
    labels = _labels((50, 50, 50))
    first, again, other = (stratified_split(labels, seed=s) for s in (7, 7, 8))
    for name in SPLIT_NAMES:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[n], other[n]) for n in SPLIT_NAMES)


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small simulated frames per class, and one broken file among the good ones."""
    folder = tmp_path_factory.mktemp("labelled")
    write_labelled_set(folder, 4, SimCamera(width_px=256, height_px=256), seed=5)
    (folder / "good" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    return folder


def test_dataset_caches_each_split_with_preprocessed_frames_and_labels(labelled_folder, tmp_path):
    summary = build_dataset(labelled_folder, tmp_path, seed=0)
    seen = []
    for split in SPLIT_NAMES:
        arrays = load_split(tmp_path, split)
        assert arrays.images.shape[1:] == INPUT_SHAPE
        assert arrays.images.dtype == np.float32
        assert len(arrays.images) == len(arrays.labels) == len(arrays.files)
        assert sum(summary.split_counts[split].values()) == len(arrays.labels)
        first = labelled_folder / str(arrays.files[0])
        assert CLASS_NAMES[arrays.labels[0]] == first.parent.name
        np.testing.assert_array_equal(arrays.images[0], preprocess_frame(read_frame(first).data))
        seen.extend(arrays.files.tolist())
    assert len(seen) == len(set(seen)) == 12


def test_the_model_learns_what_the_frame_shows_and_photometry_floors_the_verdict(
    labelled_folder, tmp_path
):
    build_dataset(labelled_folder, tmp_path, seed=0)
    for split in SPLIT_NAMES:
        arrays = load_split(tmp_path, split)
        for file, label, target, floor in zip(
            arrays.files, arrays.labels, arrays.targets, arrays.floors, strict=True
        ):
            grades = read_truth(labelled_folder / str(file)).grades
            assert target == CLASS_ORDER.index(image_grade(grades)) <= label
            # Sky brightness is measured to a few hundredths of a magnitude, so the floor holds
            # at least its grade (transparency, measured on few stars here, may add to it).
            assert floor >= CLASS_ORDER.index(grades["sky_brightness"])


def test_unreadable_frame_is_reported_and_skipped(labelled_folder, tmp_path):
    summary = build_dataset(labelled_folder, tmp_path, seed=0)
    assert [s.path for s in summary.skipped] == [str(Path("good") / "broken.fits")]
    assert summary.skipped[0].reason
    assert summary.frames == 12


def test_an_unchanged_folder_reuses_the_cache(labelled_folder, tmp_path):
    first = build_dataset(labelled_folder, tmp_path, seed=0)
    written = (tmp_path / "train.npz").stat().st_mtime_ns
    again = build_dataset(labelled_folder, tmp_path, seed=0)
    assert again == first
    assert (tmp_path / "train.npz").stat().st_mtime_ns == written


def _frame_with_trail_in_panel(panel: int) -> np.ndarray:
    """A preprocessed-looking mosaic: background noise, one horizontal 9-pixel trail."""
    rng = np.random.default_rng(0)
    sigmas = rng.normal(0.0, 1.0, size=INPUT_SHAPE)
    row, column = divmod(panel, 2)
    top, left = row * PANEL_PX + 30, column * PANEL_PX + 20
    sigmas[0, top, left : left + 9] += 200.0
    return asinh_stretch(sigmas, background=0.0, sigma=1.0).astype(np.float32)


def _panels(image: np.ndarray) -> list[np.ndarray]:
    return [
        image[0, r * PANEL_PX : (r + 1) * PANEL_PX, c * PANEL_PX : (c + 1) * PANEL_PX]
        for r in range(2)
        for c in range(2)
    ]


@pytest.mark.parametrize("seed", range(8))
def test_augmentation_keeps_shape_and_each_panel_in_place(seed):
    image = _frame_with_trail_in_panel(panel=1)
    augmented = augment_mosaic(image, np.random.default_rng(seed))
    assert augmented.shape == image.shape
    assert augmented.dtype == np.float32
    trail_pixels = [int((sigmas_above_background(p) > 100).sum()) for p in _panels(augmented)]
    assert trail_pixels == [0, 9, 0, 0]


@pytest.mark.parametrize("seed", range(8))
def test_augmentation_turns_a_trail_but_keeps_its_length_and_flux(seed):
    image = _frame_with_trail_in_panel(panel=2)
    panel = sigmas_above_background(_panels(augment_mosaic(image, np.random.default_rng(seed)))[2])
    rows, columns = np.nonzero(panel > 100)
    extent = sorted([np.ptp(rows) + 1, np.ptp(columns) + 1])
    assert extent == [1, 9]


def test_augmentation_costs_sources_a_few_percent_of_signal_to_noise_at_most():
    image = _frame_with_trail_in_panel(panel=0)
    background_before = sigmas_above_background(_panels(image)[3]).std()
    for seed in range(8):
        panels = [
            sigmas_above_background(p)
            for p in _panels(augment_mosaic(image, np.random.default_rng(seed)))
        ]
        assert panels[3].std() == pytest.approx(background_before, rel=0.03)
        trail_flux = np.sort(panels[0].ravel())[-9:].sum()
        assert 0.94 * 9 * 200.0 < trail_flux < 1.01 * 9 * 200.0


def test_training_set_is_augmented_and_keeps_labels_while_evaluation_set_is_not():
    images = np.stack([_frame_with_trail_in_panel(p) for p in range(3)])
    arrays = LabelledArrays(
        images=images,
        labels=np.array([2, 2, 2]),
        targets=np.array([0, 1, 2]),
        floors=np.array([2, 2, 2]),
        files=np.array(["a"] * 3),
    )
    augmented, plain = (
        QualityTensorDataset(arrays, augment=True),
        QualityTensorDataset(arrays, augment=False),
    )
    for index in range(3):
        image, target = augmented[index]
        assert target == index == plain[index][1]
        assert tuple(image.shape) == INPUT_SHAPE
        assert not np.array_equal(image.numpy(), images[index])
        np.testing.assert_array_equal(plain[index][0].numpy(), images[index])
