"""Build a fused ONNX graph of a BERT sentence encoder from its safetensors weights, without PyTorch.

Why: exporting through PyTorch needs PyTorch (not in a cgchat install), and a generic export
runs attention as a dozen small ops. Here each layer is ONNX Runtime's fused contrib ops
(Attention, SkipLayerNormalization, BiasGelu) over the model's own fp32 weights, so the result
is the reference model exactly, computed the way ONNX Runtime's CPU kernels are fastest.
The graph is built once and cached (a few seconds); inputs/outputs match a Hugging Face export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_MS = "com.microsoft"


def build_bert_onnx(model_dir: Path, out_path: Path) -> Path:
    """Write ``out_path`` (ONNX) for the BERT in ``model_dir`` (config.json + model.safetensors)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise ValueError(f"{model_dir} is a {config.get('model_type')!r} model; only BERT encoders are supported")
    w = load_file(str(model_dir / "model.safetensors"))
    heads, eps = int(config["num_attention_heads"]), float(config.get("layer_norm_eps", 1e-12))
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    nodes = [
        helper.make_node("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"]), "input_ids"], ["e_word"]),
        helper.make_node("Shape", ["input_ids"], ["seq_len"], start=1, end=2),  # 1-D [S]
        helper.make_node(
            "Slice",
            [const("position_ids", np.arange(w["embeddings.position_embeddings.weight"].shape[0], dtype=np.int64)),
             const("zero", np.array([0], dtype=np.int64)), "seq_len"],
            ["positions"],
        ),
        helper.make_node("Gather", [const("pos_emb", w["embeddings.position_embeddings.weight"]), "positions"], ["e_pos"]),
        helper.make_node("Gather", [const("type_emb", w["embeddings.token_type_embeddings.weight"]), "token_type_ids"], ["e_type"]),
        helper.make_node("Add", ["e_word", "e_pos"], ["e_sum0"]),
        helper.make_node("Add", ["e_sum0", "e_type"], ["e_sum"]),
        helper.make_node(
            "LayerNormalization",
            ["e_sum", const("emb_ln_g", w["embeddings.LayerNorm.weight"]), const("emb_ln_b", w["embeddings.LayerNorm.bias"])],
            ["h0"], axis=-1, epsilon=eps,
        ),
        helper.make_node("Cast", ["attention_mask"], ["mask_i32"], to=TensorProto.INT32),
    ]
    hidden = "h0"
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        nodes += [
            helper.make_node("Attention", [hidden, const(f"l{i}_qkv_w", qkv_w), const(f"l{i}_qkv_b", qkv_b), "mask_i32"],
                             [f"l{i}_attn"], domain=_MS, num_heads=heads),
            helper.make_node("MatMul", [f"l{i}_attn", const(f"l{i}_ao_w", w[p + "attention.output.dense.weight"].T)], [f"l{i}_ao"]),
            helper.make_node(
                "SkipLayerNormalization",
                [f"l{i}_ao", hidden, const(f"l{i}_ln1_g", w[p + "attention.output.LayerNorm.weight"]),
                 const(f"l{i}_ln1_b", w[p + "attention.output.LayerNorm.bias"]),
                 const(f"l{i}_ao_b", w[p + "attention.output.dense.bias"])],
                [f"l{i}_h1"], domain=_MS, epsilon=eps,
            ),
            helper.make_node("MatMul", [f"l{i}_h1", const(f"l{i}_ff1_w", w[p + "intermediate.dense.weight"].T)], [f"l{i}_ff1"]),
            helper.make_node("BiasGelu", [f"l{i}_ff1", const(f"l{i}_ff1_b", w[p + "intermediate.dense.bias"])],
                             [f"l{i}_gelu"], domain=_MS),
            helper.make_node("MatMul", [f"l{i}_gelu", const(f"l{i}_ff2_w", w[p + "output.dense.weight"].T)], [f"l{i}_ff2"]),
            helper.make_node(
                "SkipLayerNormalization",
                [f"l{i}_ff2", f"l{i}_h1", const(f"l{i}_ln2_g", w[p + "output.LayerNorm.weight"]),
                 const(f"l{i}_ln2_b", w[p + "output.LayerNorm.bias"]), const(f"l{i}_ff2_b", w[p + "output.dense.bias"])],
                [f"l{i}_out" if i < int(config["num_hidden_layers"]) - 1 else "last_hidden_state"], domain=_MS, epsilon=eps,
            ),
        ]
        hidden = f"l{i}_out"
    size = int(config["hidden_size"])
    graph = helper.make_graph(
        nodes, "bert_encoder",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
         for n in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_MS, 1)],
                              producer_name="cgchat")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    try:
        onnx.save(model, str(tmp))
        tmp.replace(out_path)  # atomic: a half-written model is never picked up
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written copy's space
        raise OSError(exc.errno, f"cannot write the text model to {out_path}: {exc.strerror or exc}") from exc
    return out_path
