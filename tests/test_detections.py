import numpy as np
import pytest

from helpers.detections import Detections
from helpers.track import Tracker


def three():
    return Detections([[0, 0, 10, 10], [5, 5, 20, 30], [1, 2, 3, 4]], [0.9, 0.2, 0.6], [1, 3, 1],
                      track_ids=[7, 8, 9])


def test_a_boolean_mask_selects_rows_of_every_column():
    d = three()
    kept = d[d.scores > 0.5]
    assert len(kept) == 2
    assert kept.boxes.tolist() == [[0, 0, 10, 10], [1, 2, 3, 4]]
    assert kept.labels.tolist() == [1, 1] and kept.track_ids.tolist() == [7, 9]
    assert d[d.labels == 3].scores.tolist() == [0.2]


def test_index_arrays_slices_and_ints_keep_the_type_two_dimensional():
    d = three()
    assert d[[2, 0]].track_ids.tolist() == [9, 7]
    assert d[1:].scores.tolist() == [0.2, 0.6]
    one = d[1]
    assert isinstance(one, Detections) and one.boxes.shape == (1, 4) and one.track_ids.tolist() == [8]
    assert len(d[np.zeros(3, bool)]) == 0


def test_detections_without_ids_stay_without_ids_when_indexed():
    d = Detections([[0, 0, 1, 1]], [0.5])
    assert d.track_ids is None and d[d.scores > 0].track_ids is None
    assert d.labels.tolist() == [0]  # labels default to class 0


def test_bad_masks_and_columns_are_named():
    d = three()
    with pytest.raises(ValueError, match=r"boolean mask of shape \(3,\)"):
        d[np.array([True, False])]
    with pytest.raises(ValueError, match="track_ids"):
        Detections([[0, 0, 1, 1]], [0.5], [1], track_ids=[1, 2])
    with pytest.raises(ValueError, match="float"):
        d[np.array([0.5])]


def test_the_tracker_returns_the_same_type_with_ids():
    tracker = Tracker(min_hits=1)
    out = tracker.update(Detections([[10, 10, 50, 90], [60, 20, 150, 60]], [0.9, 0.8], [1, 3]))
    assert isinstance(out, Detections)
    assert out.track_ids.tolist() == [1, 2] and out.labels.tolist() == [1, 3]
    assert out[out.labels == 3].track_ids.tolist() == [2]
