"""CLIP image preprocessing with Pillow + numpy: no PyTorch, no torchvision, no transformers.

Reproduces ``transformers.CLIPImageProcessor()`` (its default config is OpenAI CLIP's) to within
1e-4 on 8-bit images (tests/test_clip_models.py checks it on the sample library):

1. convert to 8-bit RGB (below);
2. resize so the shortest side is ``size`` (the long side is ``int(size * long / short)``, i.e.
   truncated, as Hugging Face does) with Pillow's BICUBIC;
3. center crop ``size`` x ``size`` (top/left offset ``(dim - size) // 2``);
4. scale to [0, 1] and normalise with CLIP's mean/std; channels first.

Mode conversion (step 1), and where it deliberately differs from Hugging Face:
- RGB, L, P, 1, CMYK, YCbCr, LAB, HSV …: Pillow's ``convert("RGB")``, exactly as the reference
  (CMYK uses Pillow's naive formula; embedded ICC profiles are ignored, as in the reference).
- Anything with transparency (RGBA, LA, PA, P or L with a ``transparency`` key): composited onto
  **white**, as transformers 5's ``convert_to_rgb`` does. (OpenAI's original code and
  transformers 4 just dropped the alpha channel; for a texture with a cut-out alpha, e.g. a leaf,
  white matches what a person sees in a file browser.)
- 16-bit integer ("I;16", "I;16B", "I;16L", "I"): **scaled** to 8 bits (value / 257). The
  reference calls ``convert("RGB")``, which *clips* at 255, so a 16-bit PNG comes out almost
  entirely white; scaling keeps the picture. For mode "I" the range is taken as 16-bit when the
  maximum is ≤ 65535 (PNG 16-bit greyscale opens as "I" in some Pillow versions), else the image
  is min-max stretched.
- Float ("F", e.g. a decoded EXR/TIFF channel): treated as display-referred values in [0, 1]
  when its maximum is ≤ 1, else in [0, 255]; clipped, then rounded to 8 bits. (The reference
  clips raw floats at 255, turning a [0, 1] image black.) No tone mapping: HDR renders should be
  tone-mapped by the caller.
- 16-bit RGB(A) PNGs: Pillow already opens them as 8-bit RGB(A), so nothing to do here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

_INT16_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``image`` (see the module docstring for each mode)."""
    mode = image.mode
    if mode in _INT16_MODES:
        a = np.asarray(image, dtype=np.float64)
        if mode == "I" and (a.min() < 0 or a.max() > 65535):
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        else:
            a = a / 257.0
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        a = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def _resize_shortest(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) == (width, height):
        return image
    return image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC)


def preprocess_one(image: Image.Image, size: int = 224) -> np.ndarray:
    """(3, size, size) float32, CLIP-normalised."""
    rgb = _resize_shortest(to_rgb(image), size)
    a = np.asarray(rgb, dtype=np.uint8)  # (H, W, 3)
    h, w = a.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    a = a[top : top + size, left : left + size].astype(np.float32) * np.float32(1 / 255)
    a = (a - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)


def preprocess(images: list[Image.Image], size: int = 224) -> np.ndarray:
    """(N, 3, size, size) float32 pixel values for CLIP, one per image, same order."""
    if not images:
        return np.zeros((0, 3, size, size), dtype=np.float32)
    return np.stack([preprocess_one(im, size) for im in images])
