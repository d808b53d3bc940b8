"""Install time only: OpenAI and OpenCLIP CLIP checkpoints as a Hugging Face ``CLIPModel``.

OpenAI's released ``ViT-B-32.pt`` (a TorchScript archive) and OpenCLIP's ``open_clip_pytorch_model.bin``
/ ``.safetensors`` share one state-dict layout (``visual.transformer.resblocks.N.attn.in_proj_weight``,
``token_embedding.weight``, ``visual.proj`` ...). This module reads that layout, infers the
architecture from the tensor shapes (width, layers, patch size, image size, context length,
projection size; heads = width / 64 as in every OpenAI/OpenCLIP ViT), and loads the weights into a
``transformers.CLIPModel``, so the one ONNX export in clip_install.py serves all three sources.

These checkpoints carry no tokenizer: the CLIP BPE tokenizer (identical for OpenAI and OpenCLIP's
ViT models) comes from ``--tokenizer`` (a tokenizer.json, or a Hugging Face CLIP folder).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


class CheckpointError(ValueError):
    """The file is not an OpenAI/OpenCLIP CLIP checkpoint this converter understands."""


def load_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of an OpenAI TorchScript archive, a torch state dict (.pt/.bin) or a .safetensors file."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif _is_torchscript(path):
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path.name} holds a {type(state).__name__}, not a state dict")
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def clip_model_from_state_dict(state: dict[str, Any], eos_token_id: int, hidden_act: str = "quick_gelu") -> Any:
    """A transformers CLIPModel holding ``state``'s weights (OpenAI/OpenCLIP layout)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config=_text_config(state, eos_token_id, hidden_act),
                        vision_config=_vision_config(state, hidden_act),
                        projection_dim=int(state["text_projection"].shape[1]))
    model = CLIPModel(config).eval()
    missing, unexpected = model.load_state_dict(_to_hf(state, config), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not match a CLIP: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def _require(state: dict[str, Any], *keys: str) -> None:
    absent = [k for k in keys if k not in state]
    if absent:
        raise CheckpointError(
            f"not an OpenAI/OpenCLIP ViT CLIP checkpoint (no {', '.join(absent)}); ResNet CLIPs are not supported")


def _layers(state: dict[str, Any], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}resblocks\.(\d+)\.", k))}
    if not found:
        raise CheckpointError(f"no transformer blocks under {prefix}")
    return max(found) + 1


def _text_config(state: dict[str, Any], eos_token_id: int, hidden_act: str) -> dict[str, Any]:
    _require(state, "token_embedding.weight", "positional_embedding", "text_projection", "ln_final.weight")
    vocab, width = state["token_embedding.weight"].shape
    return {
        "vocab_size": int(vocab), "hidden_size": int(width), "intermediate_size": int(state[
            "transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        "num_hidden_layers": _layers(state, "transformer."), "num_attention_heads": max(1, int(width) // 64),
        "max_position_embeddings": int(state["positional_embedding"].shape[0]), "hidden_act": hidden_act,
        "eos_token_id": eos_token_id, "pad_token_id": eos_token_id, "bos_token_id": eos_token_id - 1,
    }


def _vision_config(state: dict[str, Any], hidden_act: str) -> dict[str, Any]:
    _require(state, "visual.conv1.weight", "visual.positional_embedding", "visual.proj", "visual.class_embedding")
    width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return {
        "hidden_size": int(width), "intermediate_size": int(state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        "num_hidden_layers": _layers(state, "visual.transformer."), "num_attention_heads": max(1, int(width) // 64),
        "patch_size": int(patch), "image_size": int(grid * patch), "hidden_act": hidden_act,
    }


_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
          "attn.out_proj": "self_attn.out_proj"}


def _to_hf(state: dict[str, Any], config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].T.contiguous(),
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        "visual_projection.weight": state["visual.proj"].T.contiguous(),
    }
    if "logit_scale" in state:
        out["logit_scale"] = state["logit_scale"]
    for source, target, layers in (("transformer.", "text_model.encoder.layers.", config.text_config.num_hidden_layers),
                                   ("visual.transformer.", "vision_model.encoder.layers.",
                                    config.vision_config.num_hidden_layers)):
        for i in range(layers):
            block, layer = f"{source}resblocks.{i}.", f"{target}{i}."
            for name in ("weight", "bias"):
                q, k, v = state[f"{block}attn.in_proj_{name}"].chunk(3, dim=0)
                for proj, tensor in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                    out[f"{layer}self_attn.{proj}.{name}"] = tensor.contiguous()
                for ours, theirs in _BLOCK.items():
                    out[f"{layer}{theirs}.{name}"] = state[f"{block}{ours}.{name}"]
    return out
