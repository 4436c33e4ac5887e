"""A real JupyterLab server for the browser suite, and the few UI moves the tests make in it.

``LabServer`` starts ``jupyter lab`` from this interpreter (the .venv) on a free loopback port
(retrying on a new one should another process take it first) with a random token, passed in
``JUPYTER_TOKEN`` so it never shows on a command line, in a temporary copy of ``notebooks/``. Its config, data, runtime, settings
and workspace folders are private to the run, so nothing from the user's own JupyterLab (a
saved workspace, a different ``python3`` kernelspec) leaks in, and the only ``python3`` kernel
it knows is this interpreter: the kernel the notebooks run in is the venv's, as under
``--nbval-current-env``. ``stop()`` shuts the kernels down and ends the server's process group,
and is safe to call twice; should pytest itself be killed (SIGKILL, the OOM killer), the server
gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and takes its kernels down with it.

The browser authenticates once per context (``authenticate``: the token in one request, which
sets JupyterLab's login cookie), so page URLs, and Playwright's errors that quote them, carry
no token; ``redact`` scrubs it from anything else the suite prints.

The page helpers drive the JupyterLab UI as a learner does (the Run menu, clicking a cell,
Shift+Enter) and wait on DOM state, never on fixed sleeps, except where a test measures time.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# The flags; --disable-quic and --disable-dev-shm-usage because blocked UDP and a small
# /dev/shm in containers otherwise stall or crash the renderer.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
]
SCREENSHOTS = ROOT / "build" / "screenshots"

# User settings that keep the UI still: start the notebook's kernel without asking, every cell
# attached to the DOM (no windowing: the tests index cells by position), and no news or update
# toasts (they would need the internet).
_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "autoStartDefaultKernel": True, "windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the process that started it dies (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class LabServer:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root = self.workdir / "notebooks"
        self.token = secrets.token_hex(16)
        self.port = 0
        self.url = ""
        self.log_path = self.workdir / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def redact(self, text: str) -> str:
        return text.replace(self.token, "<token>") if text else text

    # -- lifecycle

    def _prepare(self) -> dict:
        shutil.copytree(ROOT / "notebooks", self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        # Notebook 04 reads the committed TNR quality results at ../benchmarks/results/.
        results = ROOT / "benchmarks" / "results"
        if results.is_dir():
            shutil.copytree(results, self.workdir / "benchmarks" / "results")
        jupyter = self.workdir / "jupyter"
        spec = jupyter / "data" / "kernels" / "python3"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True},
        }))
        for name, value in _SETTINGS.items():
            path = jupyter / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # keep ipykernel's inline backend, as in make lab
        env.update({
            "EVW_OFFLINE": "1",
            "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
            "JUPYTER_DATA_DIR": str(jupyter / "data"),
            "JUPYTER_PATH": str(jupyter / "data"),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
            "IPYTHONDIR": str(jupyter / "ipython"),
            "PYTHONUNBUFFERED": "1",
            "JUPYTER_TOKEN": self.token,  # not --IdentityProvider.token: ps would show it
        })
        return env

    def start(self, timeout: float = 90.0, attempts: int = 3) -> "LabServer":
        """Start the server; free_port() can lose a race for its port, so retry on a new one."""
        env = self._prepare()
        for attempt in range(1, attempts + 1):
            if self._launch(env, timeout):
                return self
            print(f"\njupyter lab lost port {self.port} to another process (attempt {attempt} of {attempts})")
        raise RuntimeError(f"jupyter lab found no free port in {attempts} attempts:\n{self.log_tail()}")

    def _launch(self, env: dict, timeout: float) -> bool:
        """One try on a fresh port: True once it answers, False if the port was taken."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
        ]
        if os.geteuid() == 0:  # CI containers run as root
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")
        # Its own session, so stop() can end the whole group; and SIGTERM should pytest die
        # without running stop() (Linux; elsewhere the preexec_fn is a no-op).
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                if "already in use" in self.log_tail():
                    self.stop()
                    return False
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("status")
                return True
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # Kernels run in their own sessions: ask the server to shut them down first.
            try:
                for kernel in self.api("kernels"):
                    self.api(f"kernels/{kernel['id']}", method="DELETE")
            except Exception:
                pass
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.redact(self.log_path.read_text(errors="replace")[-n:])
        except OSError:
            return "(no log)"

    # -- REST

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str = "") -> str:
        """A notebook's URL, without the token: authenticate() the browser context first."""
        return f"{self.url}/lab/tree/{notebook}?reset" if notebook else f"{self.url}/lab"

    def authenticate(self, context) -> None:
        """Log a Playwright browser context in: one request with the token sets the login cookie."""
        try:
            response = context.request.get(f"{self.url}/api/status?token={self.token}")
        except Exception as exc:
            raise RuntimeError(self.redact(str(exc))) from None
        assert response.ok, f"authenticating with the token: HTTP {response.status}"
        cookies = [c["name"] for c in context.cookies(self.url)]
        assert any(name.startswith("username-") for name in cookies), f"no login cookie set: {cookies}"


# -- the notebook, read from disk so the tests find cells by what they contain, not by number

def cell_index(notebook: str, marker: str) -> int:
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    found = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and marker in "".join(c["source"])]
    assert len(found) == 1, f"{notebook}: expected one code cell containing {marker!r}, found cells {found}"
    return found[0]


def code_cell_count(notebook: str) -> int:
    return sum(c["cell_type"] == "code" for c in json.loads((ROOT / "notebooks" / notebook).read_text())["cells"])


# -- the page

def open_notebook(page, lab: LabServer, notebook: str, timeout: float = 120.0):
    """Open a notebook in JupyterLab and wait until its kernel is idle."""
    page.goto(lab.lab_url(notebook))
    # Every cell in the DOM (windowingMode "none"), so cells(page).nth(i) is the file's cell i.
    n = len(json.loads((ROOT / "notebooks" / notebook).read_text())["cells"])
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
        arg=n, timeout=timeout * 1e3, polling=250)
    # The notebook's own kernel (python3) starts by itself (autoStartDefaultKernel); should
    # JupyterLab still ask, accept its choice as a learner would. Wait for whichever comes first:
    # the Select Kernel dialog, or the Python 3 kernel idle.
    state = page.wait_for_function(
        """() => {
            for (const d of document.querySelectorAll('.jp-Dialog'))
                if (d.textContent.includes('Select Kernel')) return 'dialog';
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const name = panel && panel.querySelector('.jp-KernelName');
            const el = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
            return name && name.textContent.includes('Python 3') && el
                && el.getAttribute('data-status') === 'idle' && 'idle';
        }""", timeout=timeout * 1e3, polling=250).json_value()
    if state == "dialog":
        page.locator(".jp-Dialog", has_text="Select Kernel").locator("button", has_text="Select").click()
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName", has_text="Python 3").first.wait_for(
            timeout=timeout * 1e3)
    wait_kernel_idle(page, timeout)
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first


def kernel_status(page) -> str:
    indicator = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator").first
    return indicator.get_attribute("data-status") or ""


def wait_kernel_idle(page, timeout: float) -> None:
    page.wait_for_function(
        """() => {
            const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
            return el && el.getAttribute('data-status') === 'idle';
        }""", timeout=timeout * 1e3, polling=250)


def cells(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def menu(page, top: str, item: str) -> None:
    """Click a main-menu entry, e.g. menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def select_cell(page, index: int) -> None:
    """Select a cell in command mode, as clicking its prompt area does."""
    cell = cells(page).nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Escape")


def wait_cells_done(page, indices, timeout: float) -> None:
    """Wait until every listed code cell shows an execution count ([n]) and the kernel is idle
    (markdown cells among ``indices`` are ignored)."""
    page.wait_for_function(
        """(indices) => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const el = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
            if (!el || el.getAttribute('data-status') !== 'idle') return false;
            const all = panel.querySelectorAll('.jp-Notebook .jp-Cell');
            return indices.every(i => {
                if (!all[i]) return false;
                if (!all[i].classList.contains('jp-CodeCell')) return true;
                const p = all[i].querySelector('.jp-InputPrompt');
                return p && /\\[\\d+\\]/.test(p.textContent);
            });
        }""", arg=list(indices), timeout=timeout * 1e3, polling=500)


def run_cell_and_above(page, index: int, timeout: float) -> None:
    """Run > Run All Above Selected Cell, then Run > Run Selected Cell and Do not Advance."""
    select_cell(page, index)
    menu(page, "Run", "Run All Above Selected Cell")
    menu(page, "Run", "Run Selected Cell and Do not Advance")
    wait_cells_done(page, range(index + 1), timeout)
    assert not errors(page), "\n\n".join(errors(page))


def output(page, index: int):
    return cells(page).nth(index).locator(".jp-OutputArea")


def run_to_widget(page, lab: "LabServer", notebook: str, marker: str, timeout: float = 300):
    """Open ``notebook``, run the cells up to and including the one whose source contains
    ``marker``, and return that cell's widget box (its first .widget-vbox)."""
    open_notebook(page, lab, notebook)
    index = cell_index(notebook, marker)
    run_cell_and_above(page, index, timeout=timeout)
    return output(page, index).locator(".widget-vbox").first


def drag_slider(page, slider, fraction: float) -> None:
    """Drag a slider's noUiSlider handle with the mouse to ``fraction`` (0 = left end, 1 = right)."""
    slider.scroll_into_view_if_needed()
    handle = slider.locator(".noUi-handle").bounding_box()
    base = slider.locator(".noUi-base").bounding_box()
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    # Overshoot the ends a little: the slider clamps, as it does under a real hand.
    x = base["x"] - 10 if fraction <= 0 else base["x"] + base["width"] + 10 if fraction >= 1 else base["x"] + fraction * base["width"]
    page.mouse.move(x, y, steps=10)
    page.mouse.up()


def type_readout(page, slider, text: str) -> None:
    """Type a value into a slider's editable readout and press Enter."""
    readout = slider.locator(".widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def wait_text(locator, pattern: str, timeout: float = 30.0) -> re.Match:
    """Wait until the locator's text matches ``pattern``; return the match."""
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = locator.text_content(timeout=timeout * 1e3) or ""  # innerText is empty off screen
        m = re.search(pattern, text)
        if m:
            return m
        time.sleep(0.1)
    raise AssertionError(f"text {text!r} never matched {pattern!r} within {timeout:.0f} s")


def errors(page) -> list[str]:
    """Tracebacks shown in the notebook's outputs."""
    return page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    ).all_text_contents()


def screenshot(locator, name: str) -> bytes:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    return locator.screenshot(path=str(SCREENSHOTS / name), animations="disabled")


def stable_screenshot(locator, name: str, timeout: float = 15.0, interval: float = 0.25) -> bytes:
    """Screenshot an image (or any element) once it has stopped changing: two consecutive
    screenshots, ``interval`` apart, identical. For a widget redrawn from the kernel, where the
    label can settle before the last picture has arrived and been decoded."""
    locator.page.wait_for_function("el => el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0)",
                                   arg=locator.element_handle(), timeout=timeout * 1e3)
    end = time.monotonic() + timeout
    shot = screenshot(locator, name)
    while True:
        time.sleep(interval)
        again = screenshot(locator, name)
        if again == shot:
            return shot
        if time.monotonic() > end:
            raise AssertionError(f"{name}: the picture was still changing after {timeout:.0f} s")
        shot = again


def decode(png: bytes):
    import cv2
    import numpy as np

    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def mean_abs_diff(a: bytes, b: bytes) -> float:
    import numpy as np

    x, y = decode(a), decode(b)
    assert x.shape == y.shape, (f"screenshots of different sizes, {x.shape} and {y.shape}: compare screenshots of "
                                "one element at one size")
    return float(np.abs(x.astype(np.int16) - y.astype(np.int16)).mean())
