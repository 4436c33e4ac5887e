"""Unit tests never reach the internet: only loopback connections are allowed.

The workbook promises to work offline; this turns any accidental download (a torchvision
``weights=`` default, a pooch fetch) into an immediate, named failure instead of a hang.
"""

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise ConnectionRefusedError(f"tests must not use the network: connect to {address!r} blocked")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="module")
def offline():
    # no_network is function-scoped; module-scoped fixtures that resolve weights run before
    # it, so they ask for this guard against downloads instead.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVW_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def real_video():
    """OpenCV's real pedestrian clip (Debian's opencv-doc). Tests that need it skip with the
    install command where it is absent; CI sets EVW_REAL_VIDEO_REQUIRED=1 (.ci/run installs
    opencv-doc), and there a missing clip fails instead, so the real-video paths always run."""
    import os

    from helpers import assets

    path = assets.locate("vtest_video").path
    if path is None:
        why = "vtest.avi not found: sudo apt-get install opencv-doc"
        if os.environ.get("EVW_REAL_VIDEO_REQUIRED") == "1":
            pytest.fail(f"EVW_REAL_VIDEO_REQUIRED=1 but {why}")
        pytest.skip(why)
    return path
