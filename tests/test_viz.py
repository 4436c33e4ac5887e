import numpy as np

from helpers import viz


def test_draw_boxes_draws_on_a_copy():
    image = np.zeros((100, 200, 3), np.uint8)
    out = viz.draw_boxes(image, [[10, 20, 60, 80]], ["car"], colors=[(0, 255, 0)], thickness=1)
    assert image.max() == 0, "the input is left untouched"
    # Anti-aliased lines spread over a pixel or two around the edge.
    assert out[45:55, 9:12, 1].max() > 100 and out[45:55, 59:62, 1].max() > 100
    assert out[..., [0, 2]].max() == 0  # only the requested colour
    assert out[50, 35].max() == 0  # inside stays empty


def test_side_by_side_matches_heights_and_keeps_dtype():
    a = np.full((120, 160, 3), 10, np.uint8)
    b = np.full((240, 320, 3), 200, np.uint8)
    out = viz.side_by_side([a, b], ["a", "b"], gap=4)
    assert out.shape == (120, 160 + 4 + 160, 3) and out.dtype == np.uint8
