"""CLIP (ViT-B/32 geometry, 512-d) image and text embeddings on ONNX Runtime: no PyTorch at run time.

The model directory is written once by ``cgchat models install-clip SOURCE``
(models/clip_install.py): vision.onnx, text.onnx, tokenizer.json and the clip.json manifest.
Images are preprocessed with Pillow + numpy (models/clip_preprocess.py, identical to
Hugging Face's CLIPImageProcessor); both towers' outputs are L2-normalised here, so a dot product
is the cosine similarity and image and text vectors share one space.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from cgchat.models.clip_install import MANIFEST, REQUIRED_FILES, TEXT_ONNX, TOKENIZER, VISION_ONNX
from cgchat.models.clip_preprocess import preprocess
from cgchat.models.onnx_session import cpu_session

INSTALL_HINT = "install it with: cgchat models install-clip SOURCE (SOURCE: a Hugging Face CLIP model folder)"


class ClipNotInstalled(RuntimeError):
    """The CLIP model directory is missing or incomplete."""


_cache: dict[tuple[str, int], ClipEncoder] = {}
_cache_lock = threading.Lock()


def get_clip_encoder(model_dir: Path | None = None) -> ClipEncoder:
    """The installed CLIP, loaded once per process; raises ClipNotInstalled.

    Keyed on the manifest's mtime as well as the folder, so a long-running server picks up a model
    installed (or switched) after it started without a restart."""
    from cgchat.settings import get_settings

    folder = Path(model_dir or get_settings().clip_dir()).expanduser()
    try:
        stamp = (folder / MANIFEST).stat().st_mtime_ns
    except OSError:
        stamp = 0
    key = (str(folder), stamp)
    with _cache_lock:
        if key not in _cache:
            encoder = ClipEncoder(folder)  # raises ClipNotInstalled
            _cache.clear()
            _cache[key] = encoder
        return _cache[key]


def clip_installed(model_dir: Path | None = None) -> bool:
    try:
        get_clip_encoder(model_dir)
    except ClipNotInstalled:
        return False
    return True


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.clip(norms, 1e-12, None)).astype(np.float32)


class ClipEncoder:
    """Both CLIP towers, loaded once; thread-safe (ONNX Runtime sessions are, tokenizer calls are serialised)."""

    def __init__(self, model_dir: Path, threads: int = 0, batch_size: int = 16):
        model_dir = Path(model_dir).expanduser()
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            what = "does not exist" if not model_dir.is_dir() else f"is incomplete (missing {', '.join(missing)})"
            raise ClipNotInstalled(f"CLIP model directory {model_dir} {what}; {INSTALL_HINT}")
        try:
            manifest = json.loads((model_dir / MANIFEST).read_text())
            self.model_id = str(manifest["model_id"])
            self.dim = int(manifest["dim"])
            self.image_size = int(manifest["image_size"])
            self.context_length = int(manifest["context_length"])
            pad_id = int(manifest.get("pad_id", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise ClipNotInstalled(f"CLIP manifest {model_dir / MANIFEST} is invalid ({exc!r}); {INSTALL_HINT}") from exc

        from tokenizers import Tokenizer

        self._vision = cpu_session(model_dir / VISION_ONNX, threads)
        self._text = cpu_session(model_dir / TEXT_ONNX, threads)
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER))
        self._tokenizer.enable_truncation(max_length=self.context_length)
        # Pad to the longest in the batch: the text tower is causal and pools at the first
        # end-of-text token, so padding after it never changes the embedding.
        pad_token = self._tokenizer.id_to_token(pad_id) or "<|endoftext|>"
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self._lock = threading.Lock()
        self.model_dir = model_dir
        self.batch_size = batch_size

    def encode_images(self, images: list[Image.Image], batch_size: int | None = None) -> np.ndarray:
        """(N, dim) unit-length float32 vectors, one per image, same order."""
        batch_size = batch_size or self.batch_size
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            pixels = preprocess(images[start : start + batch_size], self.image_size)
            out[start : start + len(pixels)] = self._vision.run(["image_embeds"], {"pixel_values": pixels})[0]
        return _normalise(out)

    def encode_pixels(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Like encode_images, for images already preprocessed (``preprocess``: (N, 3, S, S) float32).

        Ingest preprocesses each picture as soon as it is decoded, so a batch holds 600 KB per
        picture instead of the decoded frames."""
        batch_size = batch_size or self.batch_size
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        for start in range(0, len(pixels), batch_size):
            chunk = np.ascontiguousarray(pixels[start : start + batch_size], dtype=np.float32)
            out[start : start + len(chunk)] = self._vision.run(["image_embeds"], {"pixel_values": chunk})[0]
        return _normalise(out)

    def encode_texts(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """(N, dim) unit-length float32 vectors, one per text, same order."""
        batch_size = batch_size or self.batch_size
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            with self._lock:
                encodings = self._tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            out[start : start + len(ids)] = self._text.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0]
        return _normalise(out)
