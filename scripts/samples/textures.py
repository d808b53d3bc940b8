"""Procedural texture / image generators for the sample library (numpy + Pillow).

Every generator is seeded, so the output is reproducible.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _value_noise(size: int, cells: int, rng: np.random.RandomState) -> np.ndarray:
    """Tileable smooth value noise in [0, 1], shape (size, size)."""
    grid = rng.rand(cells, cells)
    t = np.arange(size) * cells / size
    i0 = np.floor(t).astype(int)
    f = t - i0
    f = f * f * (3 - 2 * f)
    i1 = (i0 + 1) % cells
    a = grid[i0][:, i0]
    b = grid[i0][:, i1]
    c = grid[i1][:, i0]
    d = grid[i1][:, i1]
    fx = f[None, :]
    fy = f[:, None]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def fbm(size: int, seed: int, octaves: int = 4, base: int = 4) -> np.ndarray:
    rng = np.random.RandomState(seed)
    out = np.zeros((size, size))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * _value_noise(size, base * 2 ** o, rng)
        total += amp
        amp *= 0.5
    return out / total


def _to8(a: np.ndarray) -> np.ndarray:
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- dragon

def dragon_scales(size: int = 256, seed: int = 3) -> tuple[Image.Image, Image.Image]:
    """Overlapping fish-scale pattern. Returns (albedo RGB, roughness L)."""
    rng = np.random.RandomState(seed)
    cell = size // 8  # 8 scales across, tiles seamlessly
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    height = np.zeros((size, size))
    tint = np.zeros((size, size))
    # rows drawn bottom to top so upper rows overlap lower ones
    n_rows = size // (cell // 2)
    tints = rng.rand(n_rows + 2, 10)
    for row in range(n_rows + 1, -2, -1):
        cy = row * cell / 2
        off = (cell / 2) if row % 2 else 0.0
        for col in range(-1, size // cell + 1):
            cx = col * cell + off + cell / 2
            dx = (xx - cx + size / 2) % size - size / 2  # wrap horizontally
            dy = (yy - cy + size / 2) % size - size / 2
            r = np.sqrt(dx ** 2 + (dy * 1.15) ** 2) / (cell * 0.62)
            mask = (r < 1.0) & (dy > -cell * 0.1)
            h = np.where(mask, 1.0 - r ** 2, 0.0)
            height = np.where(mask, h, height)
            tint = np.where(mask, tints[row % (n_rows + 2), col % 10], tint)
    noise = fbm(size, seed + 1, octaves=4, base=8)
    shade = 0.35 + 0.65 * height
    base = np.stack([0.16 + 0.10 * tint, 0.42 + 0.18 * tint, 0.12 + 0.06 * tint], -1)
    rgb = base * shade[..., None] * (0.85 + 0.3 * noise[..., None])
    # dark crevices between scales
    rgb *= np.clip(height * 4.0, 0.25, 1.0)[..., None]
    albedo = Image.fromarray(_to8(rgb), "RGB")
    rough = 0.75 - 0.45 * height + 0.15 * (noise - 0.5)
    roughness = Image.fromarray(_to8(rough), "L")
    return albedo, roughness


# --------------------------------------------------------------------------- bricks

def bricks(size: int = 256, seed: int = 7) -> tuple[Image.Image, Image.Image]:
    """Red brick wall. Returns (albedo RGB, tangent-space normal map RGB)."""
    rng = np.random.RandomState(seed)
    rows, cols = 8, 4
    bh, bw = size // rows, size // cols
    mortar = 3
    yy, xx = np.mgrid[0:size, 0:size]
    row = yy // bh
    xo = (xx + (row % 2) * (bw // 2)) % size
    col = xo // bw
    ly, lx = yy % bh, xo % bw
    dist = np.minimum.reduce([ly, bh - 1 - ly, lx, bw - 1 - lx]).astype(float)
    is_brick = dist >= mortar
    brick_id = row * cols + col
    tone = rng.rand(rows * cols)[brick_id]
    noise = fbm(size, seed + 1, octaves=5, base=8)
    brick_rgb = np.stack([0.55 + 0.2 * tone, 0.18 + 0.08 * tone, 0.12 + 0.05 * tone], -1)
    mortar_rgb = np.array([0.62, 0.6, 0.55])
    rgb = np.where(is_brick[..., None], brick_rgb, mortar_rgb)
    rgb = rgb * (0.8 + 0.4 * noise[..., None])
    albedo = Image.fromarray(_to8(rgb), "RGB")

    height = np.clip((dist - mortar + 1) / 3.0, 0, 1) * 0.8 + 0.2 * noise
    gy, gx = np.gradient(height)
    strength = 4.0
    n = np.stack([-gx * strength, gy * strength, np.ones_like(height)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    normal = Image.fromarray(_to8(n * 0.5 + 0.5), "RGB")
    return albedo, normal


# --------------------------------------------------------------------------- forest

def bark(size: int = 256, seed: int = 11) -> Image.Image:
    """Brown bark: vertical ridges and cracks."""
    rng = np.random.RandomState(seed)
    n1 = fbm(size, seed, octaves=5, base=4)
    # stretch noise vertically: sample columns with low frequency along y
    streak = _value_noise(size, 16, rng)
    streak = np.repeat(streak[::8, :], 8, axis=0)[:size]
    streak = np.array(Image.fromarray(_to8(streak)).filter(
        ImageFilter.GaussianBlur(3))) / 255.0
    ridges = np.abs(np.sin((np.arange(size)[None, :] / size) * np.pi * 14
                           + 6.0 * n1)) ** 0.6
    v = 0.55 * ridges + 0.3 * streak + 0.15 * n1
    rgb = np.stack([0.30 + 0.25 * v, 0.19 + 0.16 * v, 0.10 + 0.08 * v], -1)
    rgb *= np.clip(v * 1.6, 0.3, 1.0)[..., None]
    return Image.fromarray(_to8(rgb), "RGB")


def leaf_alpha(size: int = 128) -> Image.Image:
    """Oak-ish leaf with antialiased alpha (drawn at 4x and downsampled)."""
    s = size * 4
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    import math
    pts = []
    for i in range(181):
        t = i / 180.0 * math.pi
        # lobed leaf outline around the vertical axis
        r = math.sin(t) * (0.30 + 0.07 * math.cos(t * 7))
        pts.append((s / 2 + r * s, s * 0.06 + t / math.pi * s * 0.80))
    pts += [(s - x, y) for x, y in reversed(pts)]
    d.polygon(pts, fill=(74, 128, 46, 255))
    d.line([(s / 2, s * 0.04), (s / 2, s * 0.97)], fill=(150, 170, 80, 255), width=10)
    for k in range(1, 6):
        y = s * (0.12 + 0.13 * k)
        for sx in (-1, 1):
            d.line([(s / 2, y), (s / 2 + sx * s * 0.2, y - s * 0.08)],
                   fill=(120, 155, 70, 255), width=5)
    return img.resize((size, size), Image.LANCZOS)


# --------------------------------------------------------------------------- HDRI

def sunset_sky(width: int = 256, height: int = 128) -> np.ndarray:
    """Equirectangular sunset sky, linear float RGB (H, W, 3)."""
    v = (np.arange(height)[:, None] + 0.5) / height  # 0 top .. 1 bottom
    u = (np.arange(width)[None, :] + 0.5) / width
    elev = (0.5 - v) * np.pi  # +pi/2 zenith
    zenith = np.array([0.10, 0.16, 0.40])
    horizon = np.array([1.60, 0.62, 0.22])
    ground = np.array([0.06, 0.04, 0.035])
    t = np.clip(elev / (np.pi / 2), 0, 1) ** 0.45
    sky = horizon * (1 - t)[..., None] + zenith * t[..., None]
    img = np.where((elev > 0)[..., None], sky, ground * np.ones_like(sky))
    # the sun, just above the horizon at azimuth u=0.3
    az = (u - 0.3) * 2 * np.pi
    ang = np.sqrt(az ** 2 + (elev - 0.05) ** 2)
    glow = 3.0 * np.exp(-(ang / 0.25) ** 2)[..., None] * np.array([1.0, 0.55, 0.25])
    sun = np.where((ang < 0.035)[..., None], np.array([60.0, 40.0, 22.0]), 0.0)
    img = img + np.where((elev > -0.02)[..., None], glow + sun, 0.0)
    return img.astype(np.float32)


def write_exr_rgb_half(path: Path, rgb: np.ndarray) -> None:
    import OpenEXR

    h, w, _ = rgb.shape
    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "owner": "dragon lighting dept",
        "comments": "sky_sunset_v001 - procedural sunset sky, linear Rec.709",
    }
    chans = {c: np.ascontiguousarray(rgb[..., i].astype(np.float16))
             for i, c in enumerate("RGB")}
    with OpenEXR.File(header, chans) as f:
        f.write(str(path))
