"""A trail's pieces (detections strung along a line) are told from scattered detections."""

import numpy as np

from imaging.transients.chains import on_lines


def test_pieces_of_a_trail_are_found_and_scattered_detections_are_not():
    rng = np.random.default_rng(4)
    scattered = rng.uniform(0, 1024, (100, 2))
    along = np.linspace(80, 940, 20)
    trail = np.column_stack([along, 0.4 * along + 150 + rng.normal(0, 0.4, 20)])
    xy = np.vstack([scattered, trail])
    on = on_lines(xy[:, 0], xy[:, 1], tolerance_px=1.5)
    assert on[100:].all()
    assert on[:100].sum() <= 2  # at most a chance detection lying on the trail itself


def test_random_detections_on_a_large_frame_make_no_trail():
    rng = np.random.default_rng(5)
    for _ in range(3):
        x, y = rng.uniform(0, 4096, (2, 1600))
        assert not on_lines(x, y, tolerance_px=1.5).any()


def test_a_short_row_or_a_sparse_one_is_not_a_trail():
    five = np.column_stack([np.linspace(100, 300, 5), np.full(5, 500.0)])
    assert not on_lines(five[:, 0], five[:, 1], 1.5).any()
    sparse = np.column_stack([np.linspace(0, 1000, 8), np.full(8, 500.0)])  # 143 px apart
    assert not on_lines(sparse[:, 0], sparse[:, 1], 1.5).any()
