"""Notebook 01 in JupyterLab, run from top to bottom; then the live viewer, re-run as a learner
would: its picture moves, its label shows the frame rate, and Stop freezes it."""

import re
import time

import jlab

NOTEBOOK = "01_capture.ipynb"
STATUS = r"(\d+\.\d) fps · (\d+) frames · (\d+) dropped"


def _frames(label) -> int:
    return int(jlab.wait_text(label, STATUS).group(2))


def test_run_all_then_the_viewer_moves_and_stop_halts_it(page, lab):
    jlab.open_notebook(page, lab, NOTEBOOK)
    start = time.monotonic()
    jlab.menu(page, "Run", "Run All Cells")
    jlab.wait_cells_done(page, range(len(jlab.cells(page).all())), timeout=420)
    code = jlab.cells(page).locator(".jp-InputPrompt").all_text_contents()  # innerText is empty off screen
    ran = [t for t in code if re.search(r"\[\d+\]", t)]
    assert len(ran) == jlab.code_cell_count(NOTEBOOK), code
    assert not jlab.errors(page), "\n\n".join(jlab.errors(page))
    print(f"\nRun All Cells: {len(ran)} code cells in {time.monotonic() - start:.0f} s")

    index = jlab.cell_index(NOTEBOOK, "widgets.Viewer(live_uri")
    viewer = jlab.output(page, index).locator(".widget-vbox").first
    label = viewer.locator(".widget-html")
    fps = float(jlab.wait_text(label, STATUS).group(1))
    assert fps > 1.0, f"the viewer reported {fps} fps during Run All"

    # Run the viewer's cell again (Run > Run Selected Cell and Do not Advance): a fresh, live viewer.
    old = viewer.locator("img.widget-image").element_handle()
    jlab.select_cell(page, index)
    jlab.menu(page, "Run", "Run Selected Cell and Do not Advance")
    page.wait_for_function("el => !el.isConnected", arg=old, timeout=60_000)  # the old output is replaced
    viewer = jlab.output(page, index).locator(".widget-vbox").first
    image, label = viewer.locator("img.widget-image"), viewer.locator(".widget-html")
    stop = viewer.locator("button", has_text="Stop")
    play = viewer.locator("button", has_text="Start")
    page.wait_for_function("el => !el.disabled", arg=stop.element_handle(), timeout=60_000)
    first = _frames(label)
    page.wait_for_function(  # frames flowing and a real fps figure, read from the page
        "([el, n]) => { const m = el.textContent.match(/([\\d.]+) fps · (\\d+) frames/);"
        " return m && parseFloat(m[1]) > 1 && parseInt(m[2]) > n + 10; }",
        arg=[label.element_handle(), first], timeout=60_000)

    t0 = jlab.screenshot(image, "01_viewer_t0.png")
    frames0 = _frames(label)
    time.sleep(1.0)
    t1 = jlab.screenshot(image, "01_viewer_t1.png")
    frames1 = _frames(label)
    jlab.screenshot(viewer, "01_viewer_live.png")
    fps = float(jlab.wait_text(label, STATUS).group(1))
    moved = jlab.mean_abs_diff(t0, t1)
    print(f"live: {fps} fps, {frames1 - frames0} frames in 1 s, mean |difference| {moved:.2f} grey levels")
    assert moved > 0.5, "the viewer's picture did not change in a second"
    assert frames1 > frames0
    assert fps > 1.0

    stop.click()
    page.wait_for_function("el => !el.disabled", arg=play.element_handle())
    page.wait_for_function("el => el.disabled", arg=stop.element_handle())
    time.sleep(0.5)  # a frame already on the wire may still land
    s0, n0 = jlab.screenshot(image, "01_viewer_stopped_t0.png"), label.text_content()
    time.sleep(1.0)
    s1, n1 = jlab.screenshot(image, "01_viewer_stopped_t1.png"), label.text_content()
    print(f"stopped: {n1!r}, mean |difference| {jlab.mean_abs_diff(s0, s1):.2f}")
    assert n0 == n1, f"frames still counted after Stop: {n0!r} -> {n1!r}"
    assert jlab.mean_abs_diff(s0, s1) == 0.0, "the picture still changes after Stop"

    play.click()  # and Start brings it back
    page.wait_for_function(
        "([el, t]) => el.textContent !== t", arg=[label.element_handle(), n1], timeout=30_000)
    stop.click()
    page.wait_for_function("el => el.disabled", arg=stop.element_handle())
