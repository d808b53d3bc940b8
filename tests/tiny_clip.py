"""A tiny randomly initialised CLIP (ViT-B/32 geometry: 224 px, 32 px patches, 512-d projections) and a
tiny CLIP-shaped BPE tokenizer, built in-process: no weights are ever downloaded in tests.

Random weights mean only properties that hold for any weights may be asserted: shapes, unit length,
ONNX = torch, determinism, near-identical inputs → near-identical vectors; never semantics.
"""

from __future__ import annotations

import string
from pathlib import Path


def tiny_tokenizer():
    """A CLIP-shaped tokenizer: lowercase, BPE with </w> word ends, <|startoftext|> … <|endoftext|>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    chars = list(string.ascii_lowercase + string.digits)
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = [("d", "r"), ("dr", "a"), ("o", "n</w>"), ("dra", "g"), ("drag", "on</w>"), ("t", "e"), ("x", "t")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|unk|>", "<|startoftext|>", "<|endoftext|>"):  # end-of-text last = the highest id, as in CLIP
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<|unk|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)]
    )
    tok.add_special_tokens(["<|unk|>", "<|startoftext|>", "<|endoftext|>"])
    return tok, len(vocab), bos, eos


def build_tiny_clip(seed: int = 0):
    """(transformers CLIPModel with random weights, its tokenizers.Tokenizer)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    tokenizer, vocab_size, bos, eos = tiny_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77,
            "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "image_size": 224, "patch_size": 32,
        },
        projection_dim=512,
    )
    return CLIPModel(config).eval(), tokenizer


def export_tiny_clip(out_dir: Path, model_id: str = "test/tiny-clip-b32", seed: int = 0) -> Path:
    """Through the same conversion install-clip uses (minus the zero-shot check random weights fail)."""
    from cgchat.models.clip_install import export_clip_to_onnx

    model, tokenizer = build_tiny_clip(seed)
    return export_clip_to_onnx(model, out_dir, model_id, tokenizer, zero_shot=False)


def train_colour_sense(model, tokenizer, steps: int = 60, seed: int = 0):  # noqa: ANN001, ANN201
    """A few seconds of contrastive training on random coloured discs (random size, place, shade and
    background) against "a photo of a COLOUR circle.": a stand-in for trained weights that really
    has learned something, so the zero-shot check can be shown to pass as well as to fail."""
    import random

    import torch
    from PIL import Image, ImageDraw

    from cgchat.models.clip_install import ZERO_SHOT_COLOURS
    from cgchat.models.clip_preprocess import preprocess

    rng = random.Random(seed)
    torch.manual_seed(seed)
    names = list(ZERO_SHOT_COLOURS)

    def picture(rgb: tuple[int, int, int]) -> Image.Image:
        shade = rng.randint(180, 255)
        image = Image.new("RGB", (224, 224), (shade, shade, shade))
        r = rng.randint(40, 100)
        cx, cy = rng.randint(r, 224 - r), rng.randint(r, 224 - r)
        colour = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in rgb)
        ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        return image

    encoded = [tokenizer.encode(f"a photo of a {n} circle.").ids for n in names]
    length, eos = max(map(len, encoded)), tokenizer.token_to_id("<|endoftext|>")
    ids = torch.tensor([e + [eos] * (length - len(e)) for e in encoded])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        labels = [rng.randrange(len(names)) for _ in range(16)]
        pixels = torch.from_numpy(preprocess([picture(ZERO_SHOT_COLOURS[names[i]]) for i in labels]))
        logits = model(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids)).logits_per_image
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()
