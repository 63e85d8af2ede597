"""Painting the synthetic world's photos: numpy pixels from per-photo scene parameters.

:func:`render_images` paints a batch of photos (outdoor: sky, ground,
facade stripes, glyphs and landmarks; indoor: rooms with almost no location
signal) and adds sensor grain; :func:`encode_jpegs` turns them into JPEG
bytes. The parameters come from :func:`trigeo.data.synth_scene.scene_params`.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["encode_jpegs", "render_images"]


def _hsv(h: np.ndarray, s: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
    """HSV -> RGB for arrays of shape (B,), returning (B, 3) float32."""
    h = (np.asarray(h, np.float32) % 1.0) * 6.0
    s = np.broadcast_to(np.asarray(s, np.float32), h.shape)
    v = np.broadcast_to(np.asarray(v, np.float32), h.shape)
    k = np.stack([(5.0 + h) % 6.0, (3.0 + h) % 6.0, (1.0 + h) % 6.0], axis=-1)
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _stamp(
    img: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    r: np.ndarray,
    shape: np.ndarray,
    colour: np.ndarray,
    present: np.ndarray,
) -> None:
    """Paint one glyph per image (circle, diamond, square or 4-point star), in place.

    Only a window around each glyph is evaluated, which keeps glyphs cheap.
    """
    size = img.shape[1]
    half = int(np.ceil(float(r.max(initial=0.0)) * 1.3 * size)) + 1
    off = np.arange(-half, half + 1)
    px = np.floor(cx * size).astype(np.int64)[:, None] + off  # (B, k)
    py = np.floor(cy * size).astype(np.int64)[:, None] + off
    dx = np.abs((px + 0.5) / size - cx[:, None])[:, None, :]  # (B, 1, k)
    dy = np.abs((py + 0.5) / size - cy[:, None])[:, :, None]  # (B, k, 1)
    rr = r[:, None, None]
    s = shape[:, None, None]
    mask = np.where(
        s == 0,
        dx * dx + dy * dy < rr * rr,
        np.where(
            s == 1,
            dx + dy < rr * 1.25,
            np.where(
                s == 2,
                np.maximum(dx, dy) < rr * 0.85,
                np.sqrt(dx) + np.sqrt(dy) < np.sqrt(rr) * 1.1,
            ),
        ),
    )
    mask &= present[:, None, None]
    mask &= ((px >= 0) & (px < size))[:, None, :] & ((py >= 0) & (py < size))[:, :, None]
    bi, yi, xi = np.nonzero(mask)
    img[bi, py[bi, yi], px[bi, xi]] = colour[bi]


def _rect_bounds(
    x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray, size: int
) -> np.ndarray:
    """Integer pixel bounds (row start, row stop, col start, col stop) of rectangles.

    A pixel is inside when its centre is, as for the other shapes.
    """
    edges = np.stack([y0, y1, x0, x1], axis=1).astype(np.float64) * size - 0.5
    return np.clip(np.ceil(edges), 0, size).astype(np.int64)


def _fill_rects(
    img: np.ndarray, bounds: np.ndarray, present: np.ndarray, colour: np.ndarray
) -> None:
    """Fill one rectangle per image (where present), in place.

    A Python loop over slices beats mask arithmetic here: rectangles are
    small and one slice assignment per image touches only their pixels.
    """
    for i in np.flatnonzero(present).tolist():
        ya, yb, xa, xb = bounds[i].tolist()
        img[i, ya:yb, xa:xb] = colour[i]


def _paint_stripes(
    img: np.ndarray,
    bounds: np.ndarray,
    present: np.ndarray,
    theta: np.ndarray,
    freq: np.ndarray,
    phase: np.ndarray,
    col_a: np.ndarray,
    col_b: np.ndarray,
    sharp: float = 3.0,
) -> None:
    """Stripes of per-image orientation and frequency inside one rectangle per image."""
    size = img.shape[1]
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    k = (2 * np.pi * freq).astype(np.float32)
    kc, ks = (k * np.cos(theta)).astype(np.float32), (k * np.sin(theta)).astype(np.float32)
    delta = (col_a - col_b).astype(np.float32)
    for i in np.flatnonzero(present).tolist():
        ya, yb, xa, xb = bounds[i].tolist()
        if ya >= yb or xa >= xb:
            continue
        wave = np.sin(grid[None, xa:xb] * kc[i] + grid[ya:yb, None] * ks[i] + phase[i])
        t = np.tanh(sharp * wave) * 0.5 + 0.5
        img[i, ya:yb, xa:xb] = col_b[i] + delta[i] * t[..., None]


def _render_outdoor(p: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    b = p["temp"].size
    f32 = np.float32
    yy = ((np.arange(size, dtype=f32) + 0.5) / size)[None, :]  # (1, H)
    temp, dry, season = p["temp"], p["dryness"], p["season"]
    abs_lat = p["abs_lat"]

    # Sky: clear deep blue in the tropics and summer, grey at high latitude in winter.
    cloud = np.clip(
        0.15 + abs_lat / 80.0 - 0.25 * season * (abs_lat > 25) + rng.normal(0, 0.12, b), 0, 1
    ).astype(f32)
    clear = _hsv(rng.normal(0.58, 0.02, b), 0.75 - 0.25 * dry, 0.85)
    grey = np.array([0.62, 0.64, 0.68], f32)[None, :] * rng.uniform(0.85, 1.1, (b, 1)).astype(f32)
    sky_top = (1 - cloud)[:, None] * clear + cloud[:, None] * grey
    sky_bottom = 0.55 * sky_top + 0.45 * np.array([0.95, 0.92, 0.85], f32)
    horizon = rng.uniform(0.38, 0.62, b).astype(f32)

    # Ground: biome colour from temperature (snow), dryness (sand) and season.
    snow = 1 / (1 + np.exp(temp / 2.5))
    lush = 1 / (1 + np.exp(-(temp - 22) / 3.0))
    autumn = np.clip(-season, 0, 1) * (1 - lush) * 0.8
    green_t = np.array([0.32, 0.52, 0.22], f32)
    green_j = np.array([0.08, 0.40, 0.12], f32)
    brown = np.array([0.50, 0.40, 0.26], f32)
    sand = np.array([0.86, 0.72, 0.48], f32)
    white = np.array([0.93, 0.95, 0.98], f32)
    veg = (
        lush[:, None] * green_j
        + ((1 - lush) * (1 - autumn))[:, None] * green_t
        + autumn[:, None] * brown
    )
    ground = (1 - dry)[:, None] * veg + dry[:, None] * sand
    ground = (1 - snow)[:, None] * ground + snow[:, None] * white
    ground = (ground * rng.uniform(0.85, 1.1, (b, 1))).astype(f32)

    # One colour per row (sky gradient above the horizon, ground below), then a
    # blocky texture on the ground: two full-size passes in all.
    below = yy >= horizon[:, None]  # (B, H)
    t = np.clip(yy / horizon[:, None], 0, 1)[..., None]
    rows = sky_top[:, None, :] * (1 - t) + sky_bottom[:, None, :] * t
    rows = np.where(below[..., None], ground[:, None, :], rows).astype(f32)
    coarse = rng.standard_normal((b, 8, 8), dtype=f32)
    reps = -(-size // 8)
    tex = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :size, :size]
    roughness = (0.06 + 0.1 * (1 - snow) * (1 - dry)).astype(f32)[:, None, None]
    gain = 1 + roughness * tex * below[:, :, None]
    img = rows[:, :, None, :] * gain[..., None]

    # Country facade: a block of stripes standing on the horizon.
    x0 = rng.uniform(0.0, 0.45, b).astype(f32)
    x1 = x0 + rng.uniform(0.35, 0.55, b).astype(f32)
    top = horizon - rng.uniform(0.12, 0.3, b).astype(f32)
    bottom = horizon + rng.uniform(0.1, 0.3, b).astype(f32)
    _paint_stripes(
        img,
        _rect_bounds(x0, x1, top, bottom, size),
        p["facade"],
        p["theta"],
        p["freq"],
        rng.uniform(0, 2 * np.pi, b).astype(f32),
        _hsv(p["hue_a"], 0.8, 0.9),
        _hsv(p["hue_a"] + 0.5, 0.5, 0.35),
    )

    # Country glyphs in the sky.
    col_c = _hsv(p["hue_c"], 0.85, 0.95)
    for _ in range(3):
        cx = rng.uniform(0.08, 0.92, b).astype(f32)
        cy = (rng.uniform(0.1, 0.8, b) * (horizon - 0.1)).astype(f32) + 0.05
        r = rng.uniform(0.05, 0.09, b).astype(f32)
        _stamp(img, cx, cy, r, p["shape"], col_c, rng.random(b) < 0.7)

    # Landmark silhouettes near the largest cities (evaluated on those images only).
    lm = np.flatnonzero(p["landmark"] >= 0)
    cx_all = rng.uniform(0.3, 0.7, b).astype(f32)
    if lm.size:
        xx = yy[:, None, :]
        y3 = yy[:, :, None]
        cx = cx_all[lm][:, None, None]
        w = p["lm_width"][lm][:, None, None] / 2
        h = p["lm_height"][lm][:, None, None]
        base = horizon[lm][:, None, None] + 0.02
        dx = np.abs(xx - cx)
        body = (dx < w) & (y3 < base) & (y3 >= base - h)
        tip = base - h
        spire = (y3 < tip) & (y3 >= tip - 0.25) & (dx < w * (y3 - (tip - 0.25)) / 0.25)
        dome = (dx * dx + (y3 - tip) ** 2 < (w * 1.1) ** 2) & (y3 < tip)
        mast = (dx < 0.02) & (y3 < tip) & (y3 >= tip - 0.2)
        kind = p["lm_top"][lm][:, None, None]
        mask = body | np.where(kind == 0, spire, np.where(kind == 1, dome, mast))
        bi, yi, xi = np.nonzero(mask)
        img[lm[bi], yi, xi] = _hsv(p["lm_hue"][lm], 0.55, 0.45)[bi]

    # Light of the hour: warmer early and late in the day; exposure jitter.
    warm = np.clip(np.abs(p["hour"] - 13.0) / 6.0, 0, 1) ** 2
    tint = np.stack([1 + 0.18 * warm, 1 + 0.02 * warm, 1 - 0.2 * warm], axis=-1)
    img *= (tint * rng.uniform(0.8, 1.12, (b, 1))).astype(f32)[:, None, None, :]
    return img


def _render_indoor(p: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    b = p["temp"].size
    f32 = np.float32
    grid = (np.arange(size, dtype=f32) + 0.5) / size
    wall = _hsv(rng.uniform(0.02, 0.16, b), rng.uniform(0.05, 0.35, b), rng.uniform(0.55, 0.95, b))
    floor = _hsv(rng.uniform(0.05, 0.1, b), rng.uniform(0.3, 0.6, b), rng.uniform(0.25, 0.55, b))
    floor_y = rng.uniform(0.62, 0.85, b).astype(f32)
    rows = np.where((grid[None, :] >= floor_y[:, None])[..., None], floor[:, None], wall[:, None])
    # Lamp light falls off from a random point; exposure jitter.
    lx = rng.uniform(0.2, 0.8, b).astype(f32)[:, None, None]
    light = (
        1.1 - 0.5 * ((grid[None, None, :] - lx) ** 2 + grid[None, :, None] ** 2)
    ) * rng.uniform(0.75, 1.1, (b, 1, 1)).astype(f32)
    img = rows.astype(f32)[:, :, None, :] * light[..., None]
    for _ in range(3):
        x0 = rng.uniform(0, 0.8, b).astype(f32)
        y0 = rng.uniform(0.05, 0.7, b).astype(f32)
        x1 = x0 + rng.uniform(0.1, 0.35, b).astype(f32)
        y1 = y0 + rng.uniform(0.1, 0.35, b).astype(f32)
        col = _hsv(rng.uniform(0, 1, b), rng.uniform(0.1, 0.7, b), rng.uniform(0.2, 0.9, b))
        _fill_rects(img, _rect_bounds(x0, x1, y0, y1, size), rng.random(b) < 0.8, col)
    # A rare small poster shows the country motif: indoor photos leak a little signal.
    x0 = rng.uniform(0.1, 0.6, b).astype(f32)
    y0 = rng.uniform(0.1, 0.4, b).astype(f32)
    _paint_stripes(
        img,
        _rect_bounds(x0, x0 + 0.22, y0, y0 + 0.22, size),
        p["poster"],
        p["theta"],
        p["freq"],
        np.zeros(b, f32),
        _hsv(p["hue_a"], 0.8, 0.9),
        _hsv(p["hue_a"] + 0.5, 0.5, 0.35),
        sharp=20.0,
    )
    return img


def render_images(
    params: dict[str, np.ndarray], size: int, seed: int, noise: float = 0.05
) -> np.ndarray:
    """Render photos from their parameters into a uint8 array (B, size, size, 3).

    ``seed`` seeds the nuisance randomness (positions, pixel noise) of this batch.
    """
    rng = np.random.default_rng(seed)
    outdoor = params["outdoor"]
    b = outdoor.size
    idx_out, idx_in = np.flatnonzero(outdoor), np.flatnonzero(~outdoor)
    groups = []
    if idx_out.size:
        groups.append(
            (idx_out, _render_outdoor({k: v[idx_out] for k, v in params.items()}, size, rng))
        )
    if idx_in.size:
        groups.append(
            (idx_in, _render_indoor({k: v[idx_in] for k, v in params.items()}, size, rng))
        )
    # Sensor noise (luminance), then 8-bit conversion per group: the float
    # images are never gathered into one batch array.
    # Uniform grain with the requested standard deviation: several times cheaper
    # to draw than Gaussian and indistinguishable after JPEG.
    grain = rng.random((b, size, size, 1), dtype=np.float32)
    grain -= 0.5
    grain *= np.float32(np.sqrt(12.0))
    out = np.empty((b, size, size, 3), np.uint8)
    for idx, img in groups:
        img += noise * grain[idx]
        img *= 255.0
        img += 0.5
        np.clip(img, 0.0, 255.0, out=img)
        out[idx] = img.astype(np.uint8)
    return out


def encode_jpegs(pixels: np.ndarray, quality: int) -> list[bytes]:
    """JPEG bytes of each (H, W, 3) uint8 image; one reused Pillow image saves overhead."""
    from PIL import Image

    canvas = Image.new("RGB", (pixels.shape[2], pixels.shape[1]))
    out = []
    for array in pixels:
        canvas.frombytes(array.tobytes())
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out
