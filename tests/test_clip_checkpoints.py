"""install-clip from OpenAI / OpenCLIP checkpoint files (models/clip_checkpoints.py).

No real checkpoint can be downloaded here, so a tiny Hugging Face CLIP is written out in the
OpenAI/OpenCLIP state-dict layout by this test's own inverse mapping (as a torch .bin with
OpenCLIP's {"state_dict": ...} wrapper, as .safetensors, and as a TorchScript archive like OpenAI's
ViT-B-32.pt), installed from those files, and must embed exactly as the original model does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLES
from tests.tiny_clip import tiny_tokenizer

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PICTURES = [SAMPLES / "forest/renders/forest_dusk_v002.jpg", SAMPLES / "dragon/assets/env/castle/tex/brick_albedo.png"]
TEXTS = ["dragon", "castle at dusk", "x"]


@pytest.fixture(scope="module")
def hf_model():
    """A tiny CLIP with OpenAI's head size (64), so heads = width / 64 holds as for real checkpoints."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer, vocab, bos, eos = tiny_tokenizer()
    torch.manual_seed(7)
    config = CLIPConfig(
        text_config={"vocab_size": vocab, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
                     "num_attention_heads": 1, "max_position_embeddings": 77, "bos_token_id": bos,
                     "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 224, "patch_size": 32},
        projection_dim=512,
    )
    return CLIPModel(config).eval(), tokenizer


def _openai_layout(model) -> dict:  # noqa: ANN001
    """The HF weights under OpenAI/OpenCLIP names (the inverse of what install-clip does)."""
    sd = model.state_dict()
    out = {
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": sd["text_model.final_layer_norm.weight"], "ln_final.bias": sd["text_model.final_layer_norm.bias"],
        "text_projection": sd["text_projection.weight"].T.contiguous(),
        "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
        "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
        "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd["vision_model.pre_layrnorm.weight"], "visual.ln_pre.bias": sd["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": sd["vision_model.post_layernorm.weight"],
        "visual.ln_post.bias": sd["vision_model.post_layernorm.bias"],
        "visual.proj": sd["visual_projection.weight"].T.contiguous(),
        "logit_scale": sd["logit_scale"],
    }
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    for hf, ours in (("text_model.encoder.layers.", "transformer.resblocks."),
                     ("vision_model.encoder.layers.", "visual.transformer.resblocks.")):
        for i in range(2):
            for p in ("weight", "bias"):
                out[f"{ours}{i}.attn.in_proj_{p}"] = torch.cat(
                    [sd[f"{hf}{i}.self_attn.{x}_proj.{p}"] for x in ("q", "k", "v")])
                for theirs, mine in names.items():
                    out[f"{ours}{i}.{mine}.{p}"] = sd[f"{hf}{i}.{theirs}.{p}"]
    return {k: v.clone() for k, v in out.items()}


def _torchscript(state: dict, path: Path) -> None:
    """An archive shaped like OpenAI's ViT-B-32.pt: a scripted module whose state_dict has these names."""

    class Node(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Node()
    for key, tensor in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, Node())
            node = getattr(node, name)
        node.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    torch.jit.save(torch.jit.script(root), str(path))


@pytest.fixture(scope="module")
def reference(hf_model, tmp_path_factory):  # noqa: ANN001, ANN201
    """Embeddings of the original HF model, exported directly."""
    from cgchat.models.clip_encoder import ClipEncoder
    from cgchat.models.clip_install import export_clip_to_onnx

    model, tokenizer = hf_model
    out = export_clip_to_onnx(model, tmp_path_factory.mktemp("ref") / "clip", "ref", tokenizer, zero_shot=False)
    encoder = ClipEncoder(out)
    return encoder.encode_images([Image.open(p) for p in PICTURES]), encoder.encode_texts(TEXTS)


@pytest.mark.parametrize("form", ["openclip_bin", "safetensors", "openai_torchscript"])
def test_checkpoint_files_install_and_embed_like_the_original(form, hf_model, reference, tmp_path):  # noqa: ANN001
    from safetensors.torch import save_file

    from cgchat.models.clip_encoder import ClipEncoder
    from cgchat.models.clip_install import install_clip

    model, tokenizer = hf_model
    state = _openai_layout(model)
    path = tmp_path / {"openclip_bin": "open_clip_pytorch_model.bin", "safetensors": "open_clip_model.safetensors",
                       "openai_torchscript": "ViT-B-32.pt"}[form]
    if form == "openclip_bin":
        torch.save({"epoch": 32, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    elif form == "safetensors":
        save_file(state, str(path))
    else:
        _torchscript(state, path)
    tokenizer.save(str(tmp_path / "tokenizer.json"))

    out = install_clip(str(path), tmp_path / "installed", zero_shot=False, tokenizer=str(tmp_path / "tokenizer.json"))
    encoder = ClipEncoder(out)
    assert encoder.model_id == path.stem and encoder.dim == 512
    images, texts = reference
    assert np.abs(encoder.encode_images([Image.open(p) for p in PICTURES]) - images).max() < 1e-5
    assert np.abs(encoder.encode_texts(TEXTS) - texts).max() < 1e-5


def test_activation_matters_and_bad_files_are_clear(hf_model, reference, tmp_path):  # noqa: ANN001
    from safetensors.torch import save_file

    from cgchat.models.clip_encoder import ClipEncoder
    from cgchat.models.clip_install import ClipInstallError, install_clip

    model, tokenizer = hf_model
    path = tmp_path / "model.safetensors"
    save_file(_openai_layout(model), str(path))
    tok = tmp_path / "tokenizer.json"
    tokenizer.save(str(tok))
    # The wrong activation loads (shapes cannot tell) but computes something else: that is why it is an option.
    gelu = ClipEncoder(install_clip(str(path), tmp_path / "gelu", zero_shot=False, tokenizer=str(tok), activation="gelu"))
    assert np.abs(gelu.encode_texts(TEXTS) - reference[1]).max() > 1e-3

    with pytest.raises(ClipInstallError, match="--tokenizer"):
        install_clip(str(path), tmp_path / "x", zero_shot=False)
    not_clip = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": torch.zeros(4, 3, 3, 3)}, str(not_clip))
    with pytest.raises(ClipInstallError, match="not an OpenAI/OpenCLIP ViT CLIP checkpoint"):
        install_clip(str(not_clip), tmp_path / "x", zero_shot=False, tokenizer=str(tok))
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with pytest.raises(ClipInstallError, match="expected an OpenAI/OpenCLIP checkpoint"):
        install_clip(str(text_file), tmp_path / "x", zero_shot=False, tokenizer=str(tok))
    with pytest.raises(ClipInstallError, match="quick_gelu or gelu"):
        install_clip(str(path), tmp_path / "x", zero_shot=False, tokenizer=str(tok), activation="relu")
    assert not (tmp_path / "x").exists()
