import numpy as np
import pytest

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
    half = viz.side_by_side([b, b], ["a", "b"], gap=4, height=120)  # smaller tiles, same layout
    assert half.shape == (120, 160 + 4 + 160, 3) and half[60, 80].tolist() == [200, 200, 200]


def test_colours_are_stable_per_class_and_spread_per_id():
    assert viz.class_color(1) == viz.class_color(1) != viz.class_color(3)
    ids = [viz.id_color(i) for i in range(1, 13)]
    assert len(set(ids)) == 12 and viz.id_color(5) == viz.id_color(5)


def test_detections_tracks_and_trails_are_drawn():
    from helpers.detections import Detections

    image = np.zeros((120, 160, 3), np.uint8)
    dets = Detections([[10, 10, 50, 90], [60, 20, 150, 60]], [0.9, 0.3], [1, 3])
    drawn = viz.draw_detections(image, dets, ("bg", "person", "N/A", "car"), min_score=0.5)
    assert drawn[10, 30].any() and not drawn[20, 100].any()  # the 0.3 car is filtered out
    trails = viz.Trails(length=3)
    for x in range(5):
        trails.update(Detections([[10.0 + 5 * x, 10, 40.0 + 5 * x, 90]], [0.9], [1], track_ids=[7]))
    assert len(trails[7]) == 3  # only the last `length` points are kept
    out = viz.draw_tracks(image, Detections([[30.0, 10, 60, 90]], [0.9], [1], track_ids=[7]),
                          ("bg", "person"), trails)
    assert (out != 0).any(axis=2).sum() > 100
    for _ in range(5):
        trails.update(Detections(track_ids=[]))
    assert trails[7] == []  # forgotten after `length` frames unseen


def test_tracks_drawing_refuses_detections_without_ids():
    from helpers.detections import Detections

    dets = Detections([[10, 10, 50, 90]], [0.9], [1])
    with pytest.raises(ValueError, match="track_ids"):
        viz.draw_tracks(np.zeros((120, 160, 3), np.uint8), dets)
    with pytest.raises(ValueError, match="Tracker"):
        viz.Trails(3).update(dets)


def test_grid_pads_rows_to_one_width():
    tiles = [np.full((40, 60, 3), v, np.uint8) for v in (10, 20, 30)]
    g = viz.grid(tiles, cols=2, gap=4)
    assert g.shape == (40 + 4 + 40, 60 + 4 + 60, 3)
    assert (g[44:, 64:] == 255).all()  # the missing fourth tile is white
