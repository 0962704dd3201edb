"""Procedural drawing for the `shapes` dataset (numpy only, deterministic per rng).

Shapes are rasterised with 2x2 supersampling inside a window around each shape,
composited over a varied background (colour gradient, faint clutter strokes) in
random colours that contrast with it, then sensor noise is added.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
SS = 2  # supersampling factor


def _inside(kind, u, v):
    """Membership in a unit-radius shape at local coordinates (u, v)."""
    if kind == "circle":
        return u * u + v * v <= 1.0
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.78
    if kind == "triangle":
        ok = np.ones_like(u, bool)
        for k in range(3):
            a = np.pi / 2 + 2 * np.pi * k / 3
            ok &= u * np.cos(a) + v * np.sin(a) <= 0.55
        return ok
    if kind == "star":
        rho, th = np.hypot(u, v), np.arctan2(v, u)
        phi = np.mod(th + np.pi / 2, 2 * np.pi / 5) / (2 * np.pi / 5)
        t = 1 - 2 * np.minimum(phi, 1 - phi)
        return rho <= 0.42 + 0.63 * t
    if kind == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if kind == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.52**2)
    raise ValueError(f"Unknown shape {kind!r}; allowed: {', '.join(SHAPES)}.")


def shape_alpha(kind, cx, cy, radius, angle, size):
    """Coverage in [0, 1], float32 [size, size], of one shape."""
    alpha = np.zeros((size, size), np.float32)
    r = int(np.ceil(radius * 1.1)) + 1
    y0, y1 = max(0, int(cy) - r), min(size, int(cy) + r + 1)
    x0, x1 = max(0, int(cx) - r), min(size, int(cx) + r + 1)
    if y1 <= y0 or x1 <= x0:
        return alpha
    ys = (np.arange(y0 * SS, y1 * SS) + 0.5) / SS
    xs = (np.arange(x0 * SS, x1 * SS) + 0.5) / SS
    dx, dy = xs[None, :] - cx, ys[:, None] - cy
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius
    cov = _inside(kind, u, v).astype(np.float32)
    alpha[y0:y1, x0:x1] = cov.reshape(y1 - y0, SS, x1 - x0, SS).mean(axis=(1, 3))
    return alpha


def strokes_alpha(segments, thickness, size):
    """Anti-aliased coverage of line segments [K, 4] (x0, y0, x1, y1 in pixels)."""
    segments = np.asarray(segments, np.float32)
    lo = np.floor(np.minimum(segments[:, [0, 1]], segments[:, [2, 3]]).min(0) - thickness).astype(int)
    hi = np.ceil(np.maximum(segments[:, [0, 1]], segments[:, [2, 3]]).max(0) + thickness).astype(int)
    (x0w, y0w), (x1w, y1w) = np.clip(lo, 0, size), np.clip(hi + 1, 0, size)
    alpha = np.zeros((size, size), np.float32)
    if x1w <= x0w or y1w <= y0w:
        return alpha
    px = np.arange(x0w, x1w, dtype=np.float32)[None, None, :] + 0.5
    py = np.arange(y0w, y1w, dtype=np.float32)[None, :, None] + 0.5
    x0, y0, x1, y1 = (segments[:, i][:, None, None] for i in range(4))
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-6), 0, 1)
    dist = np.sqrt(((px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2).min(0))
    alpha[y0w:y1w, x0w:x1w] = np.clip(thickness / 2 + 0.5 - dist, 0, 1)
    return alpha


def background(rng, size):
    """Float32 [size, size, 3] in 0-255: gradient between two colours plus faint clutter."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    a = rng.uniform(0, 2 * np.pi)
    g = np.linspace(-1, 1, size)
    t = (np.cos(a) * g[None, :] + np.sin(a) * g[:, None]) * 0.5 + 0.5
    img = (c0 + (c1 - c0) * t[..., None]).astype(np.float32)
    for _ in range(rng.integers(0, 4)):
        seg = rng.uniform(0, size, (1, 4))
        al = strokes_alpha(seg, rng.uniform(1, 3), size)[..., None] * rng.uniform(0.15, 0.4)
        img += (rng.uniform(0, 255, 3).astype(np.float32) - img) * al
    return img


def contrasting_color(rng, ref):
    for _ in range(20):
        col = rng.uniform(0, 255, 3)
        if np.linalg.norm(col - ref) > 110:
            return col
    return 255.0 - ref


def finish(rng, img):
    img = img + rng.normal(0, rng.uniform(0, 10), img.shape).astype(np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def compose_objects(rng, size, n, radius_range, max_tries=8, min_visible=0.55):
    """Draws up to `n` shapes with occlusion.

    Returns:
        `(image uint8 [size, size, 3], objects)` where each object is
        `(class_id, visible_alpha [size, size])`.
    """
    img = background(rng, size)
    placed = []  # (class_id, alpha)
    for _ in range(n):
        for _ in range(max_tries):
            k = int(rng.integers(len(SHAPES)))
            r = rng.uniform(*radius_range)
            cx, cy = rng.uniform(r * 0.8, size - r * 0.8, 2)
            alpha = shape_alpha(SHAPES[k], cx, cy, r, rng.uniform(0, 2 * np.pi), size)
            if alpha.sum() < 4:
                continue
            # Each earlier object must stay mostly visible under the new one.
            ok = all(((a * (1 - alpha)).sum() >= min_visible * full) for _, a, full in placed)
            if ok:
                placed = [(c, a * (1 - alpha), full) for c, a, full in placed] + [(k, alpha, alpha.sum())]
                center = img[int(np.clip(cy, 0, size - 1)), int(np.clip(cx, 0, size - 1))]
                col = contrasting_color(rng, center)
                img += (col.astype(np.float32) - img) * alpha[..., None]
                break
    return finish(rng, img), [(c, a) for c, a, _ in placed]


def box_of(alpha, size):
    """Normalised [ymin, xmin, ymax, xmax] of the pixels more than half covered."""
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) == 0:
        return None
    return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], np.float32) / size


def glyph_strokes(rng):
    """One glyph identity: 3-5 strokes (lines and arcs) as segments [K, 4] in [-1, 1]."""
    segs = []
    for _ in range(rng.integers(3, 6)):
        if rng.uniform() < 0.6:
            segs.append(rng.uniform(-1, 1, 4))
        else:
            c, rad = rng.uniform(-0.5, 0.5, 2), rng.uniform(0.3, 0.8)
            a0, ext = rng.uniform(0, 2 * np.pi), rng.uniform(np.pi / 2, 1.5 * np.pi)
            ang = a0 + ext * np.linspace(0, 1, 6)
            pts = c + rad * np.stack([np.cos(ang), np.sin(ang)], -1)
            segs += [np.concatenate([pts[i], pts[i + 1]]) for i in range(5)]
    return np.array(segs, np.float32)


def glyph_image(rng, strokes, size):
    """One rendering of a glyph with random rotation, scale, shear, shift, stroke width and colours."""
    img = background(rng, size)
    ang = rng.uniform(-0.45, 0.45)
    scale = rng.uniform(0.30, 0.40) * size
    shear = rng.uniform(-0.15, 0.15)
    c, s = np.cos(ang), np.sin(ang)
    m = scale * np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]])
    shift = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    p0 = strokes[:, :2] @ m.T + shift
    p1 = strokes[:, 2:] @ m.T + shift
    alpha = strokes_alpha(np.concatenate([p0, p1], 1), rng.uniform(1.8, 3.2), size)
    col = contrasting_color(rng, img[size // 2, size // 2])
    img = img * (1 - alpha[..., None]) + col * alpha[..., None]
    return finish(rng, img)
