"""Notebook 04 in JupyterLab: the TNR strength slider re-filters the preview."""

import cv2
import jlab
import numpy as np

NOTEBOOK = "04_tnr_and_interop.ipynb"
LABEL = r"strength (\d\.\d\d): (\d+) boxes at score >= (\d\.\d\d)"


def _grain(png: bytes) -> float:
    """Pixel-to-pixel noise: the spread of the Laplacian of the grey image."""
    grey = cv2.cvtColor(jlab.decode(png), cv2.COLOR_BGR2GRAY)
    return float(np.median(np.abs(cv2.Laplacian(grey, cv2.CV_32F))))


def test_strength_slider_changes_the_preview(page, lab):
    view = jlab.run_to_widget(page, lab, NOTEBOOK, "preview = widgets.TNRPreview(")
    strength = view.locator(".widget-slider", has=page.locator("label", has_text="TNR strength"))
    image, label = view.locator("img.widget-image"), view.locator(":scope > .widget-label")
    first = jlab.wait_text(label, LABEL)
    assert first.group(1) == "0.75", first.group(0)

    # Type 0 into the readout: no filtering, the raw low-light frame.
    jlab.type_readout(page, strength, "0")
    jlab.wait_text(label, r"strength 0\.00:")
    raw = jlab.stable_screenshot(image, "04_tnr_strength_0.00.png")

    # Then drag the handle to the right end: the strongest averaging.
    jlab.drag_slider(page, strength, 1.0)
    jlab.wait_text(label, r"strength 1\.00:")
    filtered = jlab.stable_screenshot(image, "04_tnr_strength_1.00.png")
    jlab.screenshot(view, "04_tnr_preview.png")

    diff = jlab.mean_abs_diff(raw, filtered)
    print(f"\nmean |difference| {diff:.2f} grey levels; grain {_grain(raw):.1f} at strength 0 -> {_grain(filtered):.1f} at 1")
    assert diff > 1.0, "the preview did not change with the strength"
    assert _grain(filtered) < _grain(raw), "strength 1.0 should show less grain than 0.0"
