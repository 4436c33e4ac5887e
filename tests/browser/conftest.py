"""Fixtures for the browser suite: one JupyterLab server and one headless Chromium per session.

The suite runs only when ``EVW_BROWSER=1`` (``make test-browser`` sets it), so ``make unit``
(``pytest tests``) collects and skips it in no time, with the reason printed. With
``EVW_BROWSER=1`` it still skips, naming what is missing, when Debian's Chromium or the
``playwright`` package is absent, unless ``EVW_BROWSER_REQUIRED=1`` (CI sets it) makes that a
failure; with it, a run in which any test skipped, or none passed, fails as a whole too.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from jlab import CHROMIUM, CHROMIUM_ARGS, LabServer


def _missing() -> str | None:
    if os.environ.get("EVW_BROWSER") != "1":
        return "browser suite: run it with `make test-browser` (JupyterLab in headless Chromium)"
    if not CHROMIUM.exists():
        return f"browser suite: {CHROMIUM} not found (apt-get install chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser suite: playwright is not installed (pip install -e '.[browser]', or make test-browser)"
    return None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _required() -> bool:
    return os.environ.get("EVW_BROWSER_REQUIRED") == "1" and os.environ.get("EVW_BROWSER") == "1"


def _skip_or_fail(reason: str):
    if _required():
        pytest.fail(reason + " (EVW_BROWSER_REQUIRED=1)", pytrace=False)
    pytest.skip(reason)


_outcomes = {"passed": 0, "skipped": 0}
_ours: set[str] = set()  # this suite's tests (pytest tests collects the unit tests too)
_server: list[LabServer] = []  # the session's server, for redacting its token from reports


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    _ours.update(item.nodeid for item in items if Path(item.path).resolve().parent == here)


def pytest_runtest_logreport(report):
    if report.nodeid not in _ours:
        return
    if report.skipped:
        _outcomes["skipped"] += 1
    elif report.passed and report.when == "call":
        _outcomes["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    # EVW_BROWSER_REQUIRED=1: a suite that skipped anything, or ran nothing, did not check the widgets.
    if _required() and exitstatus == 0 and (_outcomes["skipped"] or not _outcomes["passed"]):
        print(f"\nbrowser suite: {_outcomes['skipped']} skipped, {_outcomes['passed']} passed under "
              "EVW_BROWSER_REQUIRED=1: failing the run")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    reason = _missing()
    if reason:
        _skip_or_fail(reason)
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    _server.append(server)
    # A CI timeout sends SIGTERM: turn it into KeyboardInterrupt so the finally below still
    # stops the server (it runs in its own session, so nothing else would).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        start = time.monotonic()
        server.start()
        print(f"\nJupyterLab up at {server.url} in {time.monotonic() - start:.1f} s (root {server.root})")
        yield server
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, lab, request):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    lab.authenticate(context)  # the login cookie: no page URL carries the token
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    try:
        yield page
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            from jlab import SCREENSHOTS

            # Best effort: a crashed page or browser must not skip the rest of the teardown.
            try:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"), full_page=False,
                                timeout=10_000)
            except Exception as exc:
                print(f"\nno screenshot of the failure: {lab.redact(str(exc))}")
            print(f"\nJupyterLab log tail:\n{lab.log_tail(2000)}")
            print("browser console errors:", *(lab.redact(c) for c in console[-20:]), sep="\n  ")
        try:
            context.close()
        except Exception as exc:
            print(f"\ncould not close the browser context: {lab.redact(str(exc))}")
        # Each test's kernel goes with it: a live viewer left running would slow the next test.
        try:
            for kernel in lab.api("kernels"):
                lab.api(f"kernels/{kernel['id']}", method="DELETE")
        except OSError as exc:  # the server is gone; the lab fixture reports why
            print(f"\ncould not shut the kernels down: {exc}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
    # Nothing the suite reports carries the server's token (an error quoting a URL, a log line).
    for server in _server:
        if report.longrepr is not None and server.token in str(report.longrepr):
            report.longrepr = server.redact(str(report.longrepr))
        report.sections = [(title, server.redact(text)) for title, text in report.sections]
