"""The server the suite drives: the kernel it starts is this venv's Python, and the widget
manager extension is installed (without it widgets show as plain text)."""

import sys


def test_kernel_is_this_venv_and_widgets_extension_is_installed(lab, page):
    spec = lab.api("kernelspecs")["kernelspecs"]["python3"]["spec"]
    assert spec["argv"][0] == sys.executable, spec["argv"]
    page.goto(lab.lab_url())
    page.locator("#jp-main-dock-panel").wait_for()
    extensions = page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent).federated_extensions"
        ".map(e => e.name)")
    assert "@jupyter-widgets/jupyterlab-manager" in extensions, extensions
