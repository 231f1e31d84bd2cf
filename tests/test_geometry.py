"""Box geometry: one definition each, the same on numpy arrays and torch tensors."""

import numpy as np
import pytest
import torch

from kuzu_lightning.geometry import CROP_MARGIN, box_centres, crop_squares, page_scale, proper_boxes, to_original, to_resized

BOXES = np.array([[10, 20, 30, 60], [0, 0, 5, 2], [7, 7, 7.5, 7.2]], np.float32)


def test_centres_and_frames_agree_on_numpy_and_torch():
    scale = page_scale((512, 800), (1024, 1600))
    np.testing.assert_array_equal(scale, [0.5, 0.5])
    for convert in (to_resized, to_original):
        np.testing.assert_allclose(convert(torch.from_numpy(BOXES), torch.from_numpy(scale)).numpy(),
                                   convert(BOXES, scale))
    np.testing.assert_allclose(to_original(to_resized(BOXES, scale), scale), BOXES)
    np.testing.assert_allclose(box_centres(BOXES), [[20, 40], [2.5, 1], [7.25, 7.1]], rtol=1e-6)
    np.testing.assert_array_equal(box_centres(torch.from_numpy(BOXES)).numpy(), box_centres(BOXES))


def test_uneven_scale_maps_x_and_y_separately():
    scale = page_scale((300, 200), (600, 800))  # sx 0.5, sy 0.25
    np.testing.assert_allclose(to_resized(BOXES[:1], scale), [[5, 5, 15, 15]])


def test_crop_square_is_the_longer_side_plus_margins_centred_at_least_one_pixel():
    squares = crop_squares(BOXES, CROP_MARGIN)
    sides = squares[:, 2:] - squares[:, :2]
    np.testing.assert_allclose(sides[:, 0], sides[:, 1])
    np.testing.assert_allclose(sides[:, 0], np.array([40, 5, 1]) * (1 + 2 * CROP_MARGIN))
    np.testing.assert_allclose(box_centres(squares), box_centres(BOXES), rtol=1e-6)
    np.testing.assert_allclose(crop_squares(torch.from_numpy(BOXES), CROP_MARGIN).numpy(), squares, rtol=1e-6)


@pytest.mark.parametrize("min_size", [1.0, 0.1])
def test_proper_boxes_clip_and_drop_thin_ones(min_size):
    kept = proper_boxes(BOXES, width=25, height=50, min_size=min_size)
    expected = [[10, 20, 25, 50], [0, 0, 5, 2]] + ([[7, 7, 7.5, 7.2]] if min_size <= 0.2 else [])
    np.testing.assert_allclose(kept, expected)


def test_a_box_in_whole_pixels_encloses_it_and_stays_on_the_page():
    from kuzu_lightning.geometry import enclosing_box, pixel_box

    assert pixel_box((10.2, 20.7, 30.1, 40.0), 100, 50) == (10, 20, 31, 40)
    assert pixel_box((-3.4, -0.1, 120.5, 50.2), 100, 50) == (0, 0, 100, 50)
    assert enclosing_box([(10, 20, 31, 40), (5, 30, 12, 45)]) == (5, 20, 31, 45)
