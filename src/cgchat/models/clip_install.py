"""Install time only: export a ``transformers.CLIPModel`` to the two ONNX graphs ClipEncoder runs.

This is the one place that touches PyTorch (imported lazily, inside the functions): the export runs
once, on a machine that has torch + transformers, and what it writes is all cgchat needs at run time
(ONNX Runtime + tokenizers):

    MODEL_DIR/vision.onnx    pixel_values [N,3,S,S] float32 -> image_embeds [N,D]
    MODEL_DIR/text.onnx      input_ids, attention_mask [N,L] int64 -> text_embeds [N,D]
    MODEL_DIR/tokenizer.json the model's fast tokenizer
    MODEL_DIR/clip.json      {model_id, dim, image_size, context_length, pad_id, ...}

Embeddings are the projections (``visual_projection`` / ``text_projection`` of the pooled outputs),
NOT normalised: ClipEncoder normalises. After writing, the export is verified against the torch
model on random inputs (``verify_export``); a mismatch raises and nothing is left half-installed
(files are written to a temporary folder and moved into place at the end).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "clip.json"
VISION_ONNX = "vision.onnx"
TEXT_ONNX = "text.onnx"
TOKENIZER = "tokenizer.json"
REQUIRED_FILES = (MANIFEST, VISION_ONNX, TEXT_ONNX, TOKENIZER)
OPSET = 17


def _backend_tokenizer(tokenizer: Any):
    """A ``tokenizers.Tokenizer`` from a tokenizers.Tokenizer, a (fast) HF tokenizer, or a tokenizer.json path."""
    from tokenizers import Tokenizer

    if tokenizer is None:
        return None
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, Path)):
        path = Path(tokenizer)
        return Tokenizer.from_file(str(path / TOKENIZER if path.is_dir() else path))
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return backend
    raise TypeError(f"cannot get a fast (tokenizers) tokenizer from {type(tokenizer).__name__}; pass a CLIPTokenizerFast")


def _pad_id(tokenizer, text_config) -> int:
    """CLIP pads with <|endoftext|> (HF) or 0 (OpenAI); with the causal mask either gives the same embedding."""
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"])
    for token in ("<|endoftext|>", "</s>", "[PAD]"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    pad = getattr(text_config, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def export_clip_to_onnx(
    model: Any, out_dir: Path, model_id: str, tokenizer: Any = None, *, verify: bool = True, zero_shot: bool = True
) -> Path:
    """Export ``model`` (a transformers CLIPModel) into ``out_dir``; return ``out_dir``.

    ``tokenizer``: a CLIPTokenizerFast / tokenizers.Tokenizer / path to tokenizer.json; None means
    ``out_dir/tokenizer.json`` is already there (saved alongside by the caller).
    ``verify``: the ONNX graphs must agree with torch; ``zero_shot``: the installed pipeline
    (our preprocessing, tokenizer, ONNX) must name the colours of rendered pictures (zero_shot_check).
    Either failing raises and leaves ``out_dir`` as it was.
    """
    import torch

    out_dir = Path(out_dir)
    backend = _backend_tokenizer(tokenizer)
    if backend is None:
        if not (out_dir / TOKENIZER).is_file():
            raise FileNotFoundError(f"no tokenizer given and no {out_dir / TOKENIZER}")
        backend = _backend_tokenizer(out_dir / TOKENIZER)

    model = model.eval().float()
    # Plain matmul attention traces to plain ONNX ops; SDPA/flash paths need newer opsets or fail.
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    vision_cfg, text_cfg = model.config.vision_config, model.config.text_config
    image_size = int(vision_cfg.image_size)
    context_length = int(text_cfg.max_position_embeddings)
    dim = int(model.config.projection_dim)

    vision, text = _VisionWrapper.create(model), _TextWrapper.create(model)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clip-export-", dir=out_dir.parent))
    try:
        pixels = torch.randn(2, 3, image_size, image_size)
        ids = torch.randint(0, int(text_cfg.vocab_size), (2, 7), dtype=torch.int64)
        mask = torch.ones_like(ids)
        with torch.no_grad(), warnings.catch_warnings():
            # Tracer/legacy-exporter chatter (shape checks traced as constants: the image size is fixed anyway).
            warnings.simplefilter("ignore")
            torch.onnx.export(
                vision, (pixels,), str(tmp / VISION_ONNX), input_names=["pixel_values"], output_names=["image_embeds"],
                dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
            torch.onnx.export(
                text, (ids, mask), str(tmp / TEXT_ONNX), input_names=["input_ids", "attention_mask"],
                output_names=["text_embeds"],
                dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                              "text_embeds": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        backend.save(str(tmp / TOKENIZER))
        manifest = {
            "model_id": model_id,
            "dim": dim,
            "image_size": image_size,
            "context_length": context_length,
            "pad_id": _pad_id(backend, text_cfg),
            "vocab_size": int(text_cfg.vocab_size),
            "opset": OPSET,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if verify:
            verify_export(model, tmp)
        if zero_shot:
            zero_shot_check(tmp)
        if out_dir.exists():
            for name in REQUIRED_FILES:
                (out_dir / name).unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        # Manifest last: a directory with a manifest is a complete install.
        for name in (VISION_ONNX, TEXT_ONNX, TOKENIZER, MANIFEST):
            shutil.move(str(tmp / name), str(out_dir / name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def verify_export(model: Any, model_dir: Path, *, batch: int = 3, seq: int = 9, rtol: float = 1e-4) -> dict[str, float]:
    """Run both ONNX graphs and the torch model on the same random inputs; raise if they disagree.

    Returns {"vision": max_abs_diff, "text": max_abs_diff}. The tolerance is relative to the
    largest output magnitude (float32 rounding grows with it).
    """
    import onnxruntime as ort
    import torch

    manifest = json.loads((Path(model_dir) / MANIFEST).read_text())
    size, dim, vocab = manifest["image_size"], manifest["dim"], manifest["vocab_size"]
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, size, size, generator=gen)
    ids = torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int64)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ref_img = _VisionWrapper.create(model)(pixels).numpy()
        ref_txt = _TextWrapper.create(model)(ids, mask).numpy()
    providers = ["CPUExecutionProvider"]
    vis = ort.InferenceSession(str(Path(model_dir) / VISION_ONNX), providers=providers)
    txt = ort.InferenceSession(str(Path(model_dir) / TEXT_ONNX), providers=providers)
    got_img = vis.run(["image_embeds"], {"pixel_values": pixels.numpy()})[0]
    got_txt = txt.run(["text_embeds"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    diffs = {}
    for name, ref, got in (("vision", ref_img, got_img), ("text", ref_txt, got_txt)):
        if got.shape != (batch, dim):
            raise RuntimeError(f"{name}.onnx returned shape {got.shape}, expected {(batch, dim)}")
        diff = float(np.abs(ref - got).max())
        scale = max(float(np.abs(ref).max()), 1.0)
        if diff > rtol * scale:
            raise RuntimeError(f"{name}.onnx disagrees with the torch model: max abs diff {diff:.3g} (scale {scale:.3g})")
        diffs[name] = diff
    return diffs


ZERO_SHOT_COLOURS = {
    "red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 80, 220), "yellow": (250, 220, 30),
}


def probe_images() -> dict[str, Any]:
    """One picture per colour of ZERO_SHOT_COLOURS: a filled disc on a light grey background."""
    from PIL import Image, ImageDraw

    pictures = {}
    for name, rgb in ZERO_SHOT_COLOURS.items():
        image = Image.new("RGB", (256, 256), (235, 235, 235))
        ImageDraw.Draw(image).ellipse((40, 40, 216, 216), fill=rgb)
        pictures[name] = image
    return pictures


def zero_shot_check(model_dir: Path) -> dict[str, str]:
    """Classify rendered coloured discs against "a photo of a COLOUR circle" with the installed files.

    A trained CLIP gets every one right; random weights, a broken export, wrong preprocessing or a
    mismatched tokenizer do not. Returns {colour: predicted}; raises ClipInstallError on any miss.
    """
    from cgchat.models.clip_encoder import ClipEncoder

    encoder = ClipEncoder(Path(model_dir))
    pictures = probe_images()
    names = list(pictures)
    image_vectors = encoder.encode_images([pictures[n] for n in names])
    text_vectors = encoder.encode_texts([f"a photo of a {n} circle." for n in names])
    predicted = {name: names[int(np.argmax(text_vectors @ vector))] for name, vector in zip(names, image_vectors)}
    wrong = {k: v for k, v in predicted.items() if k != v}
    if wrong:
        detail = ", ".join(f"a {k} disc as {v!r}" for k, v in wrong.items())
        raise ClipInstallError(
            f"zero-shot check failed: the converted model labels {detail}. The checkpoint is not a trained "
            "CLIP, or its tokenizer does not belong to it; nothing was installed. (--skip-zero-shot installs "
            "it anyway, e.g. a test model.)"
        )
    return predicted


class _VisionWrapper:
    @staticmethod
    def create(model):
        import torch

        class Vision(torch.nn.Module):
            def __init__(self, clip):
                super().__init__()
                self.vision_model, self.visual_projection = clip.vision_model, clip.visual_projection

            def forward(self, pixel_values):
                pooled = self.vision_model(pixel_values=pixel_values).pooler_output
                return self.visual_projection(pooled)

        return Vision(model).eval()


class _TextWrapper:
    @staticmethod
    def create(model):
        import torch

        class Text(torch.nn.Module):
            def __init__(self, clip):
                super().__init__()
                self.text_model, self.text_projection = clip.text_model, clip.text_projection

            def forward(self, input_ids, attention_mask):
                pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
                return self.text_projection(pooled)

        return Text(model).eval()


class ClipInstallError(RuntimeError):
    """The source cannot be installed; the message says what to fix."""


def install_clip(source: str, target: Path, model_id: str | None = None, *, zero_shot: bool = True,
                 tokenizer: str | None = None, activation: str = "quick_gelu") -> Path:
    """Convert a CLIP checkpoint into ``target`` and verify it. Needs torch + transformers for this
    one-time step only. ``source``: a Hugging Face CLIP folder (or hub id where internet exists), or
    an OpenAI (``ViT-B-32.pt``) / OpenCLIP (``.bin``/``.safetensors``) checkpoint file, which needs
    ``tokenizer`` (a tokenizer.json or a Hugging Face CLIP folder) and the model's ``activation``
    (quick_gelu: OpenAI and OpenCLIP's *-quickgelu models; gelu: other OpenCLIP models)."""
    try:
        from transformers import CLIPModel
    except ImportError as exc:
        raise ClipInstallError(
            "install-clip needs PyTorch and transformers for the one-time conversion: pip install torch transformers"
        ) from exc
    local = Path(source).expanduser()
    if local.is_file():
        return _install_checkpoint_file(local, target, model_id, zero_shot, tokenizer, activation)
    if (local.is_absolute() or source.startswith((".", "~"))) and not local.is_dir():
        raise ClipInstallError(f"cannot load a CLIP checkpoint from {source!r}: no such folder")
    try:
        model = CLIPModel.from_pretrained(str(local) if local.exists() else source).eval()
    except (OSError, ValueError) as exc:
        raise ClipInstallError(
            f"cannot load a CLIP checkpoint from {source!r}: {exc}. Give a folder with config.json and the "
            "weights (e.g. a download of openai/clip-vit-base-patch32), an OpenAI/OpenCLIP checkpoint file "
            "with --tokenizer, or a hub id where internet exists."
        ) from exc
    if tokenizer:
        tok: Any = _tokenizer_from(tokenizer)
    else:
        tok = local / TOKENIZER if (local / TOKENIZER).is_file() else _hub_tokenizer(source)
    return export_clip_to_onnx(model, target, model_id or _model_id(source, local), tok, zero_shot=zero_shot)


def _install_checkpoint_file(path: Path, target: Path, model_id: str | None, zero_shot: bool,
                             tokenizer: str | None, activation: str) -> Path:
    from cgchat.models.clip_checkpoints import CHECKPOINT_SUFFIXES, CheckpointError, clip_model_from_state_dict, \
        load_state_dict

    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ClipInstallError(f"{path.name}: expected an OpenAI/OpenCLIP checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
                               " or a Hugging Face CLIP folder")
    if not tokenizer:
        raise ClipInstallError(f"{path.name} carries no tokenizer: add --tokenizer PATH (a CLIP tokenizer.json, or a "
                               "Hugging Face CLIP folder such as openai/clip-vit-base-patch32)")
    if activation not in ("quick_gelu", "gelu"):
        raise ClipInstallError(f"unknown activation {activation!r}; use quick_gelu or gelu")
    tok = _tokenizer_from(tokenizer)
    eos = tok.token_to_id("<|endoftext|>")
    if eos is None:
        raise ClipInstallError(f"{tokenizer} is not a CLIP tokenizer (no <|endoftext|> token)")
    try:
        model = clip_model_from_state_dict(load_state_dict(path), eos, activation)
    except (CheckpointError, KeyError, RuntimeError, OSError) as exc:
        raise ClipInstallError(f"cannot convert {path.name}: {exc}") from exc
    return export_clip_to_onnx(model, target, model_id or path.stem, tok, zero_shot=zero_shot)


def _tokenizer_from(spec: str) -> Any:
    """A tokenizers.Tokenizer from a tokenizer.json, or a folder with one (or with vocab.json + merges.txt)."""
    path = Path(spec).expanduser()
    if path.is_file() or (path / TOKENIZER).is_file():
        return _backend_tokenizer(path)
    if (path / "vocab.json").is_file():
        from transformers import CLIPTokenizerFast

        return _backend_tokenizer(CLIPTokenizerFast.from_pretrained(str(path)))
    raise ClipInstallError(f"no tokenizer at {spec!r}: give a tokenizer.json or a Hugging Face CLIP folder")


def _hub_tokenizer(source: str) -> Any:
    from transformers import CLIPTokenizerFast

    try:
        return CLIPTokenizerFast.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ClipInstallError(f"no tokenizer for {source!r}: {exc}") from exc


def _model_id(source: str, local: Path) -> str:
    return local.resolve().name if local.exists() else source
