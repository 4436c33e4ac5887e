"""Deterministic synthetic street-camera scenes with ground truth.

The offline stand-in for a street camera: people walk and cars drive across a
street built from the photos that ship inside the scikit-image wheel, and a
low-light noise model turns the clean frame into what a cheap camera at dusk sees.

    scene = Scene(size=(640, 480), fps=30, length=300, seed=1, noise=0.3)
    f = scene.frame(5)          # SynthFrame: clean, noisy (HxWx3 uint8 BGR) and gt
    gt = scene.ground_truth()   # every frame, without rendering pixels

Geometry: a pinhole camera 3 m above a flat ground plane, focal length = frame
height in pixels. Objects move in straight lines on the ground at constant speed,
so any frame is a closed-form function of time (random access, no simulation),
and perspective alone gives entries, exits, scale changes and depth order.
"""

from __future__ import annotations

import colorsys
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from helpers import assets, mot

CLASSES = ("person", "car")
MOT_CLASS_ID = {"person": 1, "car": 3}
MIN_SIZE = (320, 240)
MAX_SIZE = (1920, 1080)

CAMERA_HEIGHT_M = 3.0
PRE_ROLL_S = 20.0  # objects spawned this long before frame 0 populate the first frame
PERSON_RATE = 0.35  # spawns per second at density 1
CAR_RATE = 0.35
LANE_WIDTH_M = 3.5
HALF_STEP_M = 0.35  # the legs switch pose every half step
PERSON_SPRITE_H = 160  # sprites are drawn once at this height and resized per frame
CAR_SPRITE_H = 80

# Every photo this module reads (asset names in data/manifest.json). All ship inside the
# scikit-image wheel and are checksummed; skimage.data's other images would need a download.
PHOTO_ASSETS = {
    "astronaut": "photo_astronaut", "chelsea": "photo_chelsea", "coffee": "photo_coffee",
    "rocket": "photo_rocket", "brick": "texture_brick", "grass": "texture_grass", "gravel": "texture_gravel",
}
PHOTOS = tuple(sorted(PHOTO_ASSETS))
CLOTH_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "brick", "gravel", "grass")
BODY_PHOTOS = ("gravel", "brick", "coffee", "astronaut")


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    if name not in PHOTO_ASSETS:
        raise ValueError(f"photo {name!r} is not in synth.PHOTOS {PHOTOS}; only photos that "
                         "ship inside the scikit-image wheel load offline. Pick one of those.")
    img = assets.load_image(PHOTO_ASSETS[name])  # BGR, grayscale expanded to 3 channels
    img.setflags(write=False)
    return img


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    shrink = w * h < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class NoiseModel:
    """Low-light sensor noise on a [0, 1] image, one ``strength`` knob in [0, 1].

    noisy = clip(g * (Poisson(x * P) / P + read), 0, 1) with
    P = PHOTONS_AT_WHITE / strength**2, read ~ N(0, (strength * READ_SIGMA)**2),
    g = 1 + strength * FLICKER * N(0, 1) drawn once per frame.

    At strength 0.3 a mid-gray pixel has a standard deviation of about 8 DN (a dim
    street camera); at 1.0 about 26 DN and visible frame-to-frame flicker.
    """

    PHOTONS_AT_WHITE = 50.0
    READ_SIGMA = 0.03
    FLICKER = 0.05
    # Measured on 640x480x3 (2-core VM): Generator.poisson 45-65 ms per frame,
    # standard_normal(float32) about 12 ms. So pixels with lambda >= 30 use the normal
    # approximation (skew 1/sqrt(lambda) <= 0.18), and only the darker ones pay for
    # an exact Poisson draw, which matters where photons are few. The price shows at
    # strength 1 (P = 50 at white), where most pixels are exact: about 115 ms per
    # 640x480 frame, against about 20 ms at strength 0.3.
    EXACT_BELOW = 30.0

    def __init__(self, strength: float = 0.3):
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"noise strength must be in [0, 1] (0 = clean, 1 = very noisy); "
                             f"found {strength}. Pick a value such as 0.3.")
        self.strength = strength
        self.photons = self.PHOTONS_AT_WHITE / strength**2 if strength > 0 else math.inf
        self.read_sigma = strength * self.READ_SIGMA
        self.flicker_std = strength * self.FLICKER

    def __repr__(self) -> str:
        return f"NoiseModel(strength={self.strength})"

    def expected_variance(self, x):
        """Per-pixel variance for clean value ``x`` in [0, 1], before flicker, clipping
        and quantization."""
        return np.asarray(x, dtype=np.float64) / self.photons + self.read_sigma**2

    def sample_gain(self, rng: np.random.Generator) -> float:
        return 1.0 + self.flicker_std * float(rng.standard_normal())

    def apply(self, image: np.ndarray, rng: np.random.Generator, gain: float | None = None):
        """Noisy uint8 copy of a uint8 image. ``gain=1.0`` gives the flicker-free path."""
        if image.dtype != np.uint8:
            raise ValueError(f"NoiseModel.apply expects a uint8 image; found {image.dtype}. "
                             "Convert with np.clip(img, 0, 255).astype(np.uint8) first.")
        if self.strength == 0:
            return image.copy()
        if gain is None:
            gain = self.sample_gain(rng)
        # A uint8 image has only 256 levels, so value and std are table lookups
        # (cv2.LUT is ~4x faster than numpy fancy indexing here).
        levels = np.arange(256, dtype=np.float32) / np.float32(255)
        std_lut = np.sqrt(levels / np.float32(self.photons) + np.float32(self.read_sigma**2))
        n = rng.standard_normal(image.shape, dtype=np.float32)
        y = cv2.LUT(image, levels[:, None]).reshape(image.shape)
        std = cv2.LUT(image, std_lut[:, None]).reshape(image.shape)
        y += std * n
        flat = image.reshape(-1)
        first_normal_level = math.ceil(self.EXACT_BELOW * 255.0 / self.photons)
        if flat.min() < first_normal_level:
            idx = np.flatnonzero(flat < first_normal_level)
            lam = flat[idx].astype(np.float64) * (self.photons / 255.0)
            shot = rng.poisson(lam).astype(np.float32) / np.float32(self.photons)
            # The normal draw already made for these pixels is independent of the
            # Poisson draw, so it serves as their read noise.
            y.reshape(-1)[idx] = shot + np.float32(self.read_sigma) * n.reshape(-1)[idx]
        np.maximum(y, 0, out=y)
        return cv2.convertScaleAbs(y, alpha=255.0 * gain)  # rounds and saturates at 255


# ---------------------------------------------------------------- sprites


def _color(rng, sat=(0.2, 0.9), val=(0.2, 0.9), hue=None) -> np.ndarray:
    h = rng.random() if hue is None else hue
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return np.array([b, g, r], np.float32)


def _tinted(rng, h, w, color, names, keep=0.25, contrast=1.0) -> np.ndarray:
    """A random photo crop recoloured towards ``color``: real texture, new appearance."""
    photo = _photo(names[rng.integers(len(names))])
    ph, pw = photo.shape[:2]
    ch = int(ph * rng.uniform(0.15, 0.5))
    cw = int(pw * rng.uniform(0.15, 0.5))
    y, x = rng.integers(0, ph - ch), rng.integers(0, pw - cw)
    crop = _resize(photo[y:y + ch, x:x + cw], w, h).astype(np.float32) / 255
    gray = crop.mean(axis=2, keepdims=True)
    g = 1 + contrast * (gray / (gray.mean() + 1e-3) - 1)
    return np.clip((1 - keep) * color * g + keep * crop, 0, 1)


def _compose(parts: np.ndarray, textures: dict, shade: np.ndarray) -> tuple:
    bgr = np.zeros(parts.shape + (3,), np.float32)
    for pid, tex in textures.items():
        sel = parts == pid
        bgr[sel] = tex[sel] if np.ndim(tex) == 3 else tex
    bgr *= shade[..., None]
    mask = np.where(parts > 0, 255, 0).astype(np.uint8)
    return (np.clip(bgr, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def _poly(parts, pts, value):
    """Fill a polygon given in fractions of the sprite's width and height."""
    h, w = parts.shape
    p = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in pts], np.int32)
    cv2.fillPoly(parts, [p], int(value))


SKIN = [(0.62, 0.75, 0.93), (0.55, 0.67, 0.87), (0.42, 0.55, 0.75), (0.30, 0.40, 0.58),
        (0.20, 0.27, 0.40)]
HAIR = [(0.05, 0.05, 0.06), (0.10, 0.16, 0.25), (0.35, 0.60, 0.75), (0.55, 0.55, 0.55)]
CAR_PAINT = [(0.92, 0.92, 0.92), (0.08, 0.08, 0.09), (0.62, 0.62, 0.64), (0.15, 0.15, 0.75),
             (0.60, 0.30, 0.10), (0.20, 0.35, 0.15), (0.10, 0.75, 0.85), (0.35, 0.33, 0.32)]


def _person_sprites(rng, aspect: float) -> list:
    """Two walking poses (legs together, legs apart) sharing one look.

    The mask touches all four sides of the sprite, so the sprite rectangle is the
    tight box in both poses.
    """
    h = PERSON_SPRITE_H
    w = max(8, round(h * aspect))
    skin = np.array(SKIN[rng.integers(len(SKIN))], np.float32)
    hair = np.array(HAIR[rng.integers(len(HAIR))], np.float32)
    top = _tinted(rng, h, w, _color(rng), CLOTH_PHOTOS, keep=rng.uniform(0.1, 0.4))
    pants = _tinted(rng, h, w, _color(rng, val=(0.1, 0.6)), CLOTH_PHOTOS, keep=0.15)
    skin_tex = _tinted(rng, h, w, skin, ("coffee", "chelsea"), keep=0.05, contrast=0.2)
    shoes = np.float32(rng.uniform(0.05, 0.25))
    # Round bodies: brighter in the middle column, darker at the sides.
    xs = (np.arange(w) + 0.5) / w
    shade = np.broadcast_to(0.7 + 0.3 * np.sin(np.pi * xs), (h, w)).astype(np.float32)
    r = 0.065 * h / w  # head radius as a fraction of the width
    sprites = []
    for legs_apart in (False, True):
        parts = np.zeros((h, w), np.uint8)
        # 4 pants, 5 shoes, 3 top (torso and sleeves), 1 skin, 2 hair
        if legs_apart:
            _poly(parts, [(0.25, 0.54), (0.5, 0.54), (0.28, 0.96), (0.08, 0.96)], 4)
            _poly(parts, [(0.5, 0.54), (0.75, 0.54), (0.92, 0.96), (0.72, 0.96)], 4)
            _poly(parts, [(0.0, 0.95), (0.3, 0.95), (0.3, 1.0), (0.0, 1.0)], 5)
            _poly(parts, [(0.7, 0.95), (1.0, 0.95), (1.0, 1.0), (0.7, 1.0)], 5)
        else:
            _poly(parts, [(0.22, 0.54), (0.49, 0.54), (0.47, 0.96), (0.27, 0.96)], 4)
            _poly(parts, [(0.51, 0.54), (0.78, 0.54), (0.73, 0.96), (0.53, 0.96)], 4)
            _poly(parts, [(0.2, 0.95), (0.49, 0.95), (0.49, 1.0), (0.2, 1.0)], 5)
            _poly(parts, [(0.51, 0.95), (0.8, 0.95), (0.8, 1.0), (0.51, 1.0)], 5)
        _poly(parts, [(0.42, 0.11), (0.58, 0.11), (0.58, 0.18), (0.42, 0.18)], 1)
        _poly(parts, [(0.14, 0.17), (0.86, 0.17), (0.8, 0.57), (0.2, 0.57)], 3)
        _poly(parts, [(0.14, 0.17), (0.24, 0.22), (0.12, 0.5), (0.0, 0.5)], 3)
        _poly(parts, [(0.86, 0.17), (0.76, 0.22), (0.88, 0.5), (1.0, 0.5)], 3)
        _poly(parts, [(0.0, 0.5), (0.12, 0.5), (0.12, 0.56), (0.0, 0.56)], 1)
        _poly(parts, [(0.88, 0.5), (1.0, 0.5), (1.0, 0.56), (0.88, 0.56)], 1)
        cy = round(0.065 * h)
        cv2.circle(parts, (w // 2, cy), round(r * w), 1, -1)
        cv2.ellipse(parts, (w // 2, cy), (round(r * w), round(r * w)), 0, 180, 360, 2, -1)
        sprites.append(_compose(parts, {1: skin_tex, 2: hair, 3: top, 4: pants, 5: shoes},
                                shade))
    return sprites


def _car_sprites(rng, aspect: float, facing_left: bool) -> list:
    """One side view of a car (body, cabin, windows, wheels, lights)."""
    h = CAR_SPRITE_H
    w = round(h * aspect)
    paint = np.array(CAR_PAINT[rng.integers(len(CAR_PAINT))], np.float32)
    paint = np.clip(paint * rng.uniform(0.85, 1.15), 0, 1)
    body = _tinted(rng, h, w, paint, BODY_PHOTOS, keep=0.08, contrast=0.25)
    glass = _tinted(rng, h, w, np.array([0.30, 0.24, 0.18], np.float32), ("rocket", "coffee"),
                    keep=0.3, contrast=0.5)
    tire = _tinted(rng, h, w, np.array([0.08, 0.08, 0.08], np.float32), ("gravel",), keep=0.05)
    parts = np.zeros((h, w), np.uint8)
    # 1 body, 2 glass, 3 tire, 4 rim, 5 head light, 6 tail light, 7 trim
    top = rng.uniform(0.36, 0.46)
    back, front = rng.uniform(0.12, 0.3), rng.uniform(0.68, 0.88)
    rb, rf = back + rng.uniform(0.08, 0.16), front - rng.uniform(0.12, 0.22)
    _poly(parts, [(0.0, top + 0.08), (0.03, top), (0.97, top), (1.0, top + 0.1), (1.0, 0.8),
                  (0.97, 0.86), (0.03, 0.86), (0.0, 0.8)], 1)
    _poly(parts, [(back, top + 0.02), (rb, 0.0), (rf, 0.0), (front, top + 0.02)], 1)
    gi = 0.05
    mid = (rb + rf) / 2
    _poly(parts, [(back + gi, top), (rb + 0.02, 0.1), (mid - 0.01, 0.1), (mid - 0.01, top)], 2)
    _poly(parts, [(mid + 0.01, top), (mid + 0.01, 0.1), (rf - 0.02, 0.1), (front - gi, top)], 2)
    _poly(parts, [(0.0, 0.66), (1.0, 0.66), (1.0, 0.72), (0.0, 0.72)], 7)
    _poly(parts, [(0.95, top + 0.06), (1.0, top + 0.12), (1.0, top + 0.2), (0.95, top + 0.2)], 5)
    _poly(parts, [(0.0, top + 0.12), (0.04, top + 0.08), (0.04, top + 0.22), (0.0, top + 0.22)], 6)
    radius = round(0.2 * h)
    for cx in (0.19, 0.81):
        center = (round(cx * w), h - 1 - radius)
        cv2.circle(parts, center, radius, 3, -1)
        cv2.circle(parts, center, round(radius * 0.55), 4, -1)
    # Light from above: the roof is brighter than the sills.
    ys = (np.arange(h) + 0.5) / h
    shade = np.broadcast_to((1.15 - 0.4 * ys)[:, None], (h, w)).astype(np.float32)
    bgr, mask = _compose(parts, {1: body, 2: glass, 3: tire,
                                 4: np.array([0.62, 0.62, 0.62], np.float32),
                                 5: np.array([0.80, 0.95, 1.0], np.float32),
                                 6: np.array([0.10, 0.10, 0.80], np.float32),
                                 7: np.array([0.12, 0.12, 0.12], np.float32)}, shade)
    if facing_left:
        bgr, mask = np.ascontiguousarray(bgr[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
    return [(bgr, mask)]


# ---------------------------------------------------------------- background


def _mirror_tile(img: np.ndarray) -> np.ndarray:
    """2x2 mirrored copy: tiles without seams, which a photo alone does not."""
    top = np.concatenate([img, img[:, ::-1]], axis=1)
    return np.concatenate([top, top[::-1]], axis=0)


def _street(rng, width, height, horizon, road_near, lanes) -> np.ndarray:
    """Far band from a photo, then a perspective-correct ground plane: paving, an
    asphalt road with lane markings, paving again, fading into haze."""
    f = float(height)
    hz = int(math.ceil(horizon))
    far_name = ("rocket", "brick", "grass")[rng.integers(3)]
    if far_name == "rocket":  # a real scene: one crop of it, aspect kept
        photo = _photo(far_name)
        ph, pw = photo.shape[:2]
        cw = int(pw * rng.uniform(0.6, 1.0))
        ch = min(ph, max(8, int(cw * hz / width)))
        x, y = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
        far = _resize(photo[y:y + ch, x:x + cw], width, hz).astype(np.float32) / 255
    else:  # a wall or a hedge: the texture repeated at a plausible scale, then tinted
        tile = _mirror_tile(_photo(far_name))
        side = max(8, round(hz * rng.uniform(0.4, 0.8)) * 2)
        tile = _resize(tile, side, side)
        far = np.tile(tile, (hz // side + 1, width // side + 1, 1))[:hz, :width]
        hue = rng.uniform(0.0, 0.1) if far_name == "brick" else rng.uniform(0.2, 0.4)
        tint = _color(rng, sat=(0.3, 0.7), val=(0.5, 0.9), hue=hue)
        far = far.astype(np.float32) / 255 * tint * 1.6

    ys = np.arange(hz, height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    z = (f * CAMERA_HEIGHT_M / np.maximum(ys - horizon, 0.25))[:, None]
    gx = (xs[None, :] - width / 2) * z / f
    gz = np.broadcast_to(z, gx.shape)

    def ground(name, texels_per_m, color, blur):
        tex = _mirror_tile(_photo(name)).astype(np.float32) / 255
        tex = tex.mean(axis=2, keepdims=True) * color / max(float(tex.mean()), 1e-3)
        if blur:  # far away many texels land in one pixel: sample a blurred copy there
            tex = cv2.GaussianBlur(tex, (0, 0), blur)
        return cv2.remap(tex, (gx * texels_per_m).astype(np.float32),
                         (gz * texels_per_m).astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_WRAP)

    asphalt = _color(rng, sat=(0.0, 0.1), val=(0.25, 0.4))
    paving = _color(rng, sat=(0.05, 0.25), val=(0.5, 0.7))
    far_w = np.clip((gz - 8) / 15, 0, 1)[..., None]
    road = (ground("gravel", 128, asphalt, 0) * (1 - far_w)
            + ground("gravel", 128, asphalt, 4) * far_w)
    walk = ground("brick", 90, paving, 0) * (1 - far_w) + ground("brick", 90, paving, 4) * far_w
    road_far = road_near + lanes * LANE_WIDTH_M
    on_road = ((gz > road_near) & (gz < road_far))[..., None]
    plane = np.where(on_road, road, walk)
    # Paint: solid edge lines, dashed lines between lanes (3 m dash, 6 m period).
    paint = (np.abs(gz - road_near) < 0.1) | (np.abs(gz - road_far) < 0.1)
    for k in range(1, lanes):
        paint |= (np.abs(gz - road_near - k * LANE_WIDTH_M) < 0.08) & ((gx % 6.0) < 3.0)
    plane[paint] = 0.85
    haze = np.clip((gz - 20) / 80, 0, 0.6)[..., None]
    plane = plane * (1 - haze) + haze * far[-1:].mean(axis=1, keepdims=True)
    img = np.concatenate([far, plane], axis=0) * rng.uniform(0.75, 1.0)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- scene


@dataclass
class SynthFrame:
    index: int
    timestamp: float  # seconds
    clean: np.ndarray  # HxWx3 uint8 BGR
    noisy: np.ndarray  # HxWx3 uint8 BGR
    gt: mot.GroundTruth


class Scene:
    """A street scene of ``length`` frames, fully determined by its arguments."""

    def __init__(self, size=(640, 480), fps: float = 30.0, length: int = 300, seed: int = 0,
                 noise: float = 0.3, density: float = 1.0):
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be (width, height); found {size!r}.") from None
        if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
            raise ValueError(f"size must lie within {MIN_SIZE[0]}x{MIN_SIZE[1]} .. "
                             f"{MAX_SIZE[0]}x{MAX_SIZE[1]} (width x height); found "
                             f"{width}x{height}. Resize the frames afterwards for another size.")
        if not (isinstance(length, (int, np.integer)) and length >= 1):
            raise ValueError(f"length must be a whole number of frames >= 1; found {length!r}.")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be > 0; found {fps!r}. Street cameras use 15, 25 or 30.")
        if not (math.isfinite(density) and density >= 0):
            raise ValueError(f"density must be >= 0 (1.0 = a normal street); found {density!r}.")
        if not (isinstance(seed, (int, np.integer)) and seed >= 0):
            raise ValueError(f"seed must be an int >= 0; found {seed!r}.")
        self.size = (width, height)
        self.fps = float(fps)
        self.length = int(length)
        self.seed = int(seed)
        self.density = float(density)
        self.noise_model = NoiseModel(noise)
        self._plan(np.random.default_rng(self.seed))
        self._sprite_cache = {}
        self._bg = None
        self._gt = None

    def __repr__(self) -> str:
        w, h = self.size
        return (f"Scene(size=({w}, {h}), fps={self.fps:g}, length={self.length}, "
                f"seed={self.seed}, noise={self.noise_model.strength:g}, "
                f"density={self.density:g})")

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for i in range(self.length):
            yield self.frame(i)

    # -- planning: every trajectory is fixed here, from one generator

    def _plan(self, rng):
        width, height = self.size
        f = float(height)
        self.horizon = height * rng.uniform(0.30, 0.40)
        self.lanes = int(rng.integers(2, 5))
        self.road_near = rng.uniform(7.0, 10.0)
        self._layout_seed = int(rng.integers(2**31))
        duration = self.length / self.fps
        rows = []

        def spawn_times(rate):
            n = rng.poisson(rate * self.density * (duration + PRE_ROLL_S))
            t = list(rng.uniform(-PRE_ROLL_S, duration, n))
            if self.density > 0:  # every scene shows both classes entering while it runs
                t.append(rng.uniform(0, 0.4 * duration))
            return t

        def border_x(z, w_m, side):
            # Ground X where an object of width w_m at depth z is just outside the frame.
            return side * ((width / 2) * z / f + w_m / 2 + 0.05)

        for t0 in spawn_times(PERSON_RATE):
            h_m = rng.uniform(1.55, 1.9)
            aspect = rng.uniform(0.36, 0.48)
            # Uniform in 1/z spreads the feet evenly over the image rows.
            z0, z1 = 1 / rng.uniform(1 / 30, 1 / 3.5, 2)
            side = rng.choice([-1.0, 1.0])
            speed = math.exp(rng.uniform(math.log(0.4), math.log(3.0)))
            rows.append((0, t0, z0, z1, side, speed, h_m, aspect))
        lane_speed = np.exp(rng.uniform(math.log(4.0), math.log(14.0), self.lanes))
        for t0 in spawn_times(CAR_RATE):
            lane = int(rng.integers(self.lanes))
            zc = self.road_near + (lane + 0.5) * LANE_WIDTH_M
            z0 = zc + rng.normal(0, 0.2)
            z1 = np.clip(z0 + rng.normal(0, 0.8), zc - 1.2, zc + 1.2)  # drift within the lane
            side = -1.0 if lane < self.lanes / 2 else 1.0  # near lanes drive right
            speed = lane_speed[lane] * rng.uniform(0.85, 1.15)
            h_m, aspect = rng.uniform(1.35, 1.7), rng.uniform(2.0, 2.5)
            rows.append((1, t0, z0, z1, side, speed, h_m, aspect))

        rows.sort(key=lambda r: r[1])
        cls, t0, z0, z1, side, speed, h_m, aspect = (np.array(c, dtype=np.float64) for c in
                                                    zip(*rows)) if rows else [np.zeros(0)] * 8
        w_m = h_m * aspect
        x0 = border_x(z0, w_m, side)
        x1 = border_x(z1, w_m, -side)
        dist = np.hypot(x1 - x0, z1 - z0)
        self._cls = cls.astype(np.int64)
        self._t0, self._t1 = t0, t0 + dist / speed
        self._x0, self._z0 = x0, z0
        self._vx, self._vz = (x1 - x0) / dist * speed, (z1 - z0) / dist * speed
        self._speed, self._h_m, self._w_m, self._aspect = speed, h_m, w_m, aspect
        # Ids go, in spawn order, only to objects that are on screen in some frame. That test
        # costs each object's lifetime in frames, so it runs lazily, in spawn order, as far as
        # the frames asked for need it (_assign_ids): a million-frame soak source opens at once.
        self._id = np.zeros(len(rows), np.int64)
        self._planned = 0  # objects [0, _planned) have their id (0: never on screen)
        self._next_id = 1

    def _boxes(self, k, t):
        """Integer placement (x0, y0, w, h) and depth of object(s) ``k`` at time(s) ``t``."""
        width, height = self.size
        f = float(height)
        dt = t - self._t0[k]
        x = self._x0[k] + self._vx[k] * dt
        z = self._z0[k] + self._vz[k] * dt
        h = np.maximum(1, np.floor(f * self._h_m[k] / z + 0.5))
        w = np.maximum(1, np.floor(f * self._w_m[k] / z + 0.5))
        x0 = np.floor(width / 2 + f * x / z - w / 2 + 0.5)
        y0 = np.floor(self.horizon + f * CAMERA_HEIGHT_M / z - h + 0.5)
        return x0, y0, w, h, z

    def _assign_ids(self, t: float, chunk: int = 256) -> None:
        """Give ids to every object spawned by time ``t`` (the rows are sorted by spawn time)."""
        n = len(self._t0)
        while self._planned < n and self._t0[self._planned] <= t:
            ks = np.arange(self._planned, min(n, self._planned + chunk))
            seen = ks[self._on_screen_somewhere(ks)]
            self._id[seen] = np.arange(self._next_id, self._next_id + len(seen))
            self._next_id += len(seen)
            self._planned = int(ks[-1]) + 1

    def _on_screen_somewhere(self, ks: np.ndarray) -> np.ndarray:
        """For objects ``ks``: is the box on screen in some frame of its lifetime?"""
        n = len(ks)
        if n == 0:
            return np.zeros(0, bool)
        # Each object's frames, one frame wider each side than rounding could need, all
        # objects in one flat array; then the same time test as _placements, so every id
        # given here shows up in the gt.
        t0, t1 = self._t0[ks], self._t1[ks]
        first = np.maximum(0, np.floor(t0 * self.fps) - 1).astype(np.int64)
        last = np.minimum(self.length - 1, np.ceil(t1 * self.fps) + 1).astype(np.int64)
        count = np.maximum(last - first + 1, 0)
        j = np.repeat(np.arange(n), count)
        offsets = np.arange(len(j)) - np.repeat(np.cumsum(count) - count, count)
        t = (first[j] + offsets) / self.fps
        alive = (t0[j] <= t) & (t <= t1[j])
        j, t = j[alive], t[alive]
        x0, y0, w, h, _ = self._boxes(ks[j], t)
        width, height = self.size
        on = (x0 < width) & (x0 + w > 0) & (y0 < height) & (y0 + h > 0)
        return np.bincount(j[on], minlength=n) > 0

    def _placements(self, i):
        """Objects whose box meets frame ``i``, far to near."""
        t = i / self.fps
        self._assign_ids(t)
        k = np.nonzero((self._t0 <= t) & (t <= self._t1) & (self._id > 0))[0]
        x0, y0, w, h, z = self._boxes(k, t)
        width, height = self.size
        keep = (x0 < width) & (x0 + w > 0) & (y0 < height) & (y0 + h > 0)
        k, x0, y0, w, h, z = (a[keep] for a in (k, x0, y0, w, h, z))
        order = np.lexsort((self._id[k], -z))
        steps = np.floor(self._speed[k] * (t - self._t0[k]) / HALF_STEP_M).astype(np.int64)
        return [(int(k[j]), int(x0[j]), int(y0[j]), int(w[j]), int(h[j]),
                 int(steps[j] % 2) if self._cls[k[j]] == 0 else 0) for j in order]

    def _sprites(self, k):
        if k not in self._sprite_cache:
            # Seeded by the track id, so an object looks the same whichever frame is asked first.
            rng = np.random.default_rng([self.seed, 7, int(self._id[k])])
            if self._cls[k] == 0:
                self._sprite_cache[k] = _person_sprites(rng, self._aspect[k])
            else:
                self._sprite_cache[k] = _car_sprites(rng, self._aspect[k], self._vx[k] < 0)
        return self._sprite_cache[k]

    def _background(self):
        if self._bg is None:
            rng = np.random.default_rng([self.seed, 3, self._layout_seed])
            width, height = self.size
            self._bg = _street(rng, width, height, self.horizon, self.road_near, self.lanes)
            self._bg.setflags(write=False)
        return self._bg

    def _render(self, i, draw: bool):
        """(clean image or None, GroundTruth) of frame ``i``; visibility from a label map."""
        width, height = self.size
        placed = self._placements(i)
        canvas = self._background().copy() if draw else None
        # The label map only needs to cover the union of the boxes.
        ux0 = max(0, min((p[1] for p in placed), default=0))
        uy0 = max(0, min((p[2] for p in placed), default=0))
        ux1 = min(width, max((p[1] + p[3] for p in placed), default=0))
        uy1 = min(height, max((p[2] + p[4] for p in placed), default=0))
        label = np.zeros((max(0, uy1 - uy0), max(0, ux1 - ux0)), np.uint16)
        full_area = np.zeros(len(placed) + 1)
        boxes = np.zeros((len(placed), 4))
        for n, (k, x0, y0, w, h, pose) in enumerate(placed, 1):
            sprite, mask = self._sprites(k)[pose]
            alpha = _resize(mask, w, h)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
            sub = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            full_area[n] = np.count_nonzero(alpha > 127)
            label[cy0 - uy0:cy1 - uy0, cx0 - ux0:cx1 - ux0][sub > 127] = n  # nearer ones win
            boxes[n - 1] = (cx0, cy0, cx1, cy1)
            if draw:
                s = _resize(sprite, w, h)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].astype(np.float32)
                a = sub[..., None].astype(np.float32) / 255
                roi = canvas[cy0:cy1, cx0:cx1]
                roi[:] = (roi + (s - roi) * a + 0.5).astype(np.uint8)
        visible = np.bincount(label.ravel(), minlength=len(placed) + 1)
        ks = np.array([p[0] for p in placed], np.int64)
        gt = mot.GroundTruth(
            frame=np.full(len(placed), i), track_id=self._id[ks], boxes=boxes,
            class_id=np.where(self._cls[ks] == 0, MOT_CLASS_ID["person"], MOT_CLASS_ID["car"]),
            visibility=np.divide(visible[1:], full_area[1:], out=np.zeros(len(placed)),
                                 where=full_area[1:] > 0),
            active=np.ones(len(placed), np.int64))
        return canvas, gt

    def _check_index(self, i):
        if not (isinstance(i, (int, np.integer)) and 0 <= i < self.length):
            raise ValueError(f"frame index must be an int in [0, {self.length - 1}]; found {i!r}.")

    def frame(self, i: int) -> SynthFrame:
        self._check_index(i)
        clean, gt = self._render(int(i), draw=True)
        noisy = self.noise_model.apply(clean, np.random.default_rng([self.seed, int(i)]))
        return SynthFrame(int(i), i / self.fps, clean, noisy, gt)

    def ground_truth(self) -> mot.GroundTruth:
        """All frames' ground truth; no pixels are drawn, only the label maps."""
        if self._gt is None:
            self._gt = mot.GroundTruth.concat(self._render(i, draw=False)[1]
                                              for i in range(self.length))
        return self._gt

    def write_gt(self, path) -> Path:
        return mot.write_gt(path, self.ground_truth())

    def write_video(self, path, which: str = "noisy", fourcc: str = "mp4v") -> Path:
        """Encode every frame through helpers.capture.VideoSink, the workbook's one video
        writer: the file appears only when complete and verified."""
        from helpers.capture import VideoSink

        if which not in ("noisy", "clean"):
            raise ValueError(f"which must be 'noisy' or 'clean'; found {which!r}.")
        with VideoSink(path, self.fps, self.size, fourcc) as sink:
            for i in range(self.length):
                clean, _ = self._render(i, draw=True)
                if which == "noisy":
                    clean = self.noise_model.apply(clean, np.random.default_rng([self.seed, i]))
                sink.write(clean)
        return Path(path)
