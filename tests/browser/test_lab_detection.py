"""Notebook 03 in JupyterLab: dragging the score-threshold slider changes how many boxes are drawn."""

import jlab

NOTEBOOK = "03_detection_and_tracking.ipynb"
BOXES = r"(\d+) boxes at score >= (\d\.\d\d)"
# Mean |difference| of the picture alone (img.widget-image, not the slider or label) between two
# thresholds that draw different boxes: each box is a thin outline plus a filled caption, so
# two boxes more or fewer move the mean by ~0.7 grey levels (1280x1000 viewport); an unchanged
# picture gives 0.
CHANGED = 0.35


def test_threshold_slider_changes_the_boxes_drawn(page, lab):
    view = jlab.run_to_widget(page, lab, NOTEBOOK, "widgets.ThresholdView(")
    slider, image = view.locator(".widget-slider"), view.locator("img.widget-image")
    label = view.locator(":scope > .widget-label")
    start = jlab.wait_text(label, BOXES)
    assert start.group(2) == "0.50", start.group(0)
    at_half = int(start.group(1))
    shot_half = jlab.stable_screenshot(image, "03_threshold_0.50.png")

    # The drag sends intermediate thresholds too; the kernel sets the picture before the label,
    # so once the label reads the final threshold, wait for the picture to stop changing.
    jlab.drag_slider(page, slider, 0.0)
    low = jlab.wait_text(label, r"(\d+) boxes at score >= (0\.05)")
    shot_low = jlab.stable_screenshot(image, "03_threshold_0.05.png")

    jlab.drag_slider(page, slider, 1.0)
    high = jlab.wait_text(label, r"(\d+) boxes at score >= (0\.95)")
    shot_high = jlab.stable_screenshot(image, "03_threshold_0.95.png")
    jlab.screenshot(view, "03_threshold_view.png")

    n_low, n_high = int(low.group(1)), int(high.group(1))
    low_half, low_high = jlab.mean_abs_diff(shot_low, shot_half), jlab.mean_abs_diff(shot_low, shot_high)
    half_high = jlab.mean_abs_diff(shot_half, shot_high)
    print(f"\nboxes drawn: {n_low} at 0.05, {at_half} at 0.50, {n_high} at 0.95; picture mean |difference| "
          f"0.05/0.50 {low_half:.2f}, 0.05/0.95 {low_high:.2f}, 0.50/0.95 {half_high:.2f} grey levels")
    assert n_low > at_half >= n_high, (n_low, at_half, n_high)
    assert low_half > CHANGED, f"the picture did not redraw from 0.50 to 0.05 ({low_half:.2f} grey levels)"
    assert low_high > CHANGED, f"the picture did not redraw from 0.05 to 0.95 ({low_high:.2f} grey levels)"
    if at_half > n_high:
        assert half_high > CHANGED, f"0.50 and 0.95 draw different boxes but one picture ({half_high:.2f})"
    assert slider.locator(".widget-readout").text_content() == "0.95"
