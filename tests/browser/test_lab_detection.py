"""Notebook 03 in JupyterLab: dragging the score-threshold slider changes how many boxes are drawn."""

import jlab

NOTEBOOK = "03_detection_and_tracking.ipynb"
BOXES = r"(\d+) boxes at score >= (\d\.\d\d)"


def test_threshold_slider_changes_the_boxes_drawn(page, lab):
    jlab.open_notebook(page, lab, NOTEBOOK)
    index = jlab.cell_index(NOTEBOOK, "widgets.ThresholdView(")
    jlab.run_cell_and_above(page, index, timeout=300)

    view = jlab.output(page, index).locator(".widget-vbox").first
    slider, image = view.locator(".widget-slider"), view.locator("img.widget-image")
    label = view.locator(":scope > .widget-label")
    start = jlab.wait_text(label, BOXES)
    assert start.group(2) == "0.50", start.group(0)
    at_half = int(start.group(1))
    shot_half = jlab.screenshot(view, "03_threshold_0.50.png")

    src = image.get_attribute("src")
    jlab.drag_slider(page, slider, 0.0)
    low = jlab.wait_text(label, r"(\d+) boxes at score >= (0\.05)")
    page.wait_for_function("([img, src]) => img.src !== src", arg=[image.element_handle(), src])
    shot_low = jlab.screenshot(view, "03_threshold_0.05.png")

    jlab.drag_slider(page, slider, 1.0)
    high = jlab.wait_text(label, r"(\d+) boxes at score >= (0\.95)")
    shot_high = jlab.screenshot(view, "03_threshold_0.95.png")

    n_low, n_high = int(low.group(1)), int(high.group(1))
    print(f"\nboxes drawn: {n_low} at 0.05, {at_half} at 0.50, {n_high} at 0.95")
    assert n_low > at_half >= n_high, (n_low, at_half, n_high)
    assert jlab.mean_abs_diff(shot_low, shot_half) > 0.1, "the picture did not change with the threshold"
    assert jlab.mean_abs_diff(shot_low, shot_high) > 0.1, "the picture did not change with the threshold"
    assert slider.locator(".widget-readout").text_content() == "0.95"
