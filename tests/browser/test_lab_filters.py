"""Notebook 08 in JupyterLab: dragging the split slider moves the bicubic / super-resolution line."""

import jlab
import numpy as np

NOTEBOOK = "08_video_filters.ipynb"
SPLIT = r"left (\d+)%: bicubic \| right: super-resolution"


def _line_column(png: bytes) -> int:
    """Where the white split line is: the column with the most near-white pixels."""
    image = jlab.decode(png)
    white = (image.min(axis=2) > 235).sum(axis=0)
    return int(np.argmax(white))


def test_split_slider_moves_the_line(page, lab):
    view = jlab.run_to_widget(page, lab, NOTEBOOK, "widgets.SplitView(")
    slider, image = view.locator(".widget-slider"), view.locator("img.widget-image")
    label = view.locator(":scope > .widget-label")
    assert jlab.wait_text(label, SPLIT).group(1) == "50"
    middle = jlab.stable_screenshot(image, "08_split_0.50.png")

    jlab.drag_slider(page, slider, 0.15)
    # The drag sends intermediate positions too: wait for the label to reach the readout's
    # final value, then for the picture to stop changing.
    moved = int(jlab.wait_text(slider.locator(".widget-readout"), r"^(\d+)%$").group(1))
    jlab.wait_text(label, rf"left {moved}%")
    left = jlab.stable_screenshot(image, "08_split_left.png")
    jlab.screenshot(view, "08_split_view.png")

    width = jlab.decode(middle).shape[1]
    before, after = _line_column(middle), _line_column(left)
    print(f"\nsplit {50}% -> {moved}%: line at column {before} -> {after} of {width}")
    assert moved < 50, moved
    assert abs(before - width / 2) < 0.05 * width, (before, width)
    assert abs(after - moved / 100 * width) < 0.05 * width, (after, moved, width)
    assert jlab.mean_abs_diff(middle, left) > 0.1, "the picture did not change with the split"
