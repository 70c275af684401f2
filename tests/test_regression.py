"""Image regression (htc_dl.regression): points in fastai's -1..1 coordinates turned into pixels and
pixel errors, shape mistakes refused with a clear message, the point head's output shape and range,
and the drawn markers."""
import pytest
import torch
from PIL import Image

from htc_dl.regression import draw_points, pixel_errors, point_head, points_to_pixels


def test_corners_and_centre_map_to_the_right_pixels():
    pts = torch.tensor([[-1., -1.], [0., 0.], [1., 1.]])
    torch.testing.assert_close(points_to_pixels(pts, 640, 480),
                               torch.tensor([[0., 0.], [320., 240.], [640., 480.]]))


def test_an_error_of_a_tenth_of_the_range_is_five_percent_of_the_width_in_pixels():
    assert (pixel_errors(torch.tensor([[0.1, 0.]]), torch.zeros(1, 2), 640, 480).item()
            == pytest.approx(32.0))
    assert (pixel_errors(torch.tensor([[0., 0.1]]), torch.zeros(1, 2), 640, 480).item()
            == pytest.approx(24.0))
    assert (pixel_errors(torch.tensor([[[0.3, 0.4]]]), torch.tensor([[[0., 0.]]]), 200, 200).item()
            == pytest.approx(50.0))


def test_mismatched_shapes_are_refused_with_the_shapes_named():
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 1, 2\).*same shape"):
        pixel_errors(torch.zeros(3, 2), torch.zeros(3, 1, 2), 640, 480)
    with pytest.raises(ValueError, match="x and y"):
        points_to_pixels(torch.zeros(4, 3), 640, 480)


def test_point_head_gives_one_point_per_image_inside_the_picture():
    torch.manual_seed(0)
    head = point_head(32, (3, 4), channels=4)
    out = head(torch.randn(5, 32, 3, 4) * 50)
    assert out.shape == (5, 1, 2) and out.abs().max() <= 1
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_draw_points_marks_target_green_and_prediction_red_and_leaves_the_original_untouched():
    original = Image.new("RGB", (64, 48))
    drawn = draw_points(original, torch.tensor([[0., 0.]]), torch.tensor([[-0.5, -0.5]]), r=3)
    assert drawn.getpixel((35, 24)) == (230, 0, 0)     # red ring around the prediction (32, 24)
    assert drawn.getpixel((19, 12)) == (0, 200, 0)     # green ring around the target (16, 12)
    assert original.getpixel((35, 24)) == (0, 0, 0)
