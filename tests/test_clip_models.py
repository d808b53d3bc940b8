"""CLIP groundwork: preprocessing vs Hugging Face's CLIPImageProcessor, ONNX export vs torch, ClipEncoder.

No weights are downloaded: a tiny randomly initialised CLIP with ViT-B/32 geometry (224 px, 32 px
patches, 512-d projections) and a tiny hand-written BPE tokenizer stand in for the real model. So
only properties that hold for any weights are asserted (shapes, unit length, ONNX = torch,
determinism, batch = single, identical input → cosine 1), not retrieval quality.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cgchat.models.clip_preprocess import preprocess, to_rgb
from tests.tiny_clip import build_tiny_clip

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
RENDER = SAMPLES / "forest/renders/forest_dusk_v002.jpg"
SAMPLE_IMAGES = {
    "rgb_png": SAMPLES / "dragon/assets/env/castle/tex/brick_albedo.png",
    "rgb_jpg": RENDER,
    "rgba_leaf": SAMPLES / "forest/textures/leaf_alpha.png",
    "rgba_render": SAMPLES / "dragon/seq/sq010/sh020/render/sh020_beauty_v002.png",
    "grey_roughness": SAMPLES / "dragon/assets/chr/dragon/tex/dragon_scales_roughness.png",
    "cmyk_jpg": SAMPLES / "forest/renders/forest_dusk_v002_cmyk.jpg",
    "non_ascii_name": SAMPLES / "dragon/ref/référence dragon ailes.jpg",
}


def _open(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


@pytest.fixture(scope="module")
def reference():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor()  # default config = OpenAI CLIP's preprocessing


def _ref(reference, image: Image.Image) -> np.ndarray:
    return np.asarray(reference(images=[image], return_tensors="np")["pixel_values"], dtype=np.float32)


# --- preprocessing --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLE_IMAGES))
def test_preprocess_matches_hf_on_samples(reference, name):
    image = _open(SAMPLE_IMAGES[name])
    ours = preprocess([image])
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    assert np.abs(ours - _ref(reference, image)).max() <= 1e-4


def _synthetic():
    render = _open(RENDER)
    leaf = _open(SAMPLE_IMAGES["rgba_leaf"])
    return {
        "tiny_5x300": render.resize((5, 300)),
        "wide_3000x7": render.resize((3000, 7)),
        "tall_odd_225x1001": render.resize((225, 1001)),
        "exact_224": render.resize((224, 224)),
        "upscale_40x30": render.resize((40, 30)),
        "palette": render.convert("P"),
        "palette_transparency": _palette_with_transparency(render),
        "one_bit": render.convert("1"),
        "la": leaf.convert("LA"),
        "grey_L": render.convert("L"),
    }


def _palette_with_transparency(render: Image.Image) -> Image.Image:
    p = render.convert("P")
    p.info["transparency"] = 0
    return p


@pytest.mark.parametrize("name", sorted(_synthetic()))
def test_preprocess_matches_hf_on_odd_sizes_and_modes(reference, name):
    image = _synthetic()[name]
    ours = preprocess([image])
    assert ours.shape == (1, 3, 224, 224)
    assert np.abs(ours - _ref(reference, image)).max() <= 1e-4


def test_sixteen_bit_is_scaled_not_clipped(reference):
    """By design we differ from the reference on 16-bit: it clips values at 255 (an all-white image)."""
    image = _open(SAMPLES / "forest/renders/forest_dusk_v002_16bit.png")
    assert image.mode == "I;16"
    ours = preprocess([image])
    # Same pipeline as the reference once the image is 8-bit …
    assert np.abs(ours - _ref(reference, to_rgb(image))).max() <= 1e-4
    # … and the 8-bit version is the picture: close to the 8-bit render, in greyscale.
    grey_render = preprocess([_open(RENDER).convert("L")])
    assert np.abs(ours - grey_render).mean() < 0.05
    # The reference's own conversion saturates (documents why we differ).
    assert np.asarray(image.convert("RGB")).mean() > 250
    assert np.asarray(to_rgb(image)).std() > 10


def test_float_and_int32_modes():
    grey = np.asarray(_open(RENDER).convert("L"), dtype=np.float32)
    expected = preprocess([Image.fromarray(grey.astype(np.uint8), "L")])
    unit_float = Image.fromarray(grey / 255.0, "F")  # [0, 1], e.g. a decoded EXR channel
    byte_float = Image.fromarray(grey, "F")  # [0, 255]
    sixteen_in_i = Image.fromarray((grey.astype(np.int32) * 257), "I")
    for image in (unit_float, byte_float, sixteen_in_i):
        assert np.abs(preprocess([image]) - expected).max() <= 1e-4
    wide_i = Image.fromarray(grey.astype(np.int32) * 100_000 - 5, "I")  # outside 16-bit: min-max stretched
    assert np.asarray(to_rgb(wide_i)).max() == 255 and np.asarray(to_rgb(wide_i)).min() == 0


def test_preprocess_batch_and_empty():
    images = [_open(p) for p in SAMPLE_IMAGES.values()]
    batch = preprocess(images)
    assert batch.shape == (len(images), 3, 224, 224)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(batch[i], preprocess([image])[0])
    assert preprocess([]).shape == (0, 3, 224, 224)
    assert preprocess([images[0]], size=96).shape == (1, 3, 96, 96)


# --- a tiny CLIP ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip():
    return build_tiny_clip()


@pytest.fixture(scope="module")
def installed(tiny_clip, tmp_path_factory):
    from cgchat.models.clip_install import export_clip_to_onnx

    model, tokenizer = tiny_clip
    out = tmp_path_factory.mktemp("clip") / "tiny-clip"
    assert export_clip_to_onnx(model, out, "test/tiny-clip-b32", tokenizer, zero_shot=False) == out
    return out


@pytest.fixture(scope="module")
def encoder(installed):
    from cgchat.models.clip_encoder import ClipEncoder

    return ClipEncoder(installed)


def test_export_writes_files_and_manifest(installed):
    import json

    import onnx

    assert sorted(p.name for p in installed.iterdir()) == ["clip.json", "text.onnx", "tokenizer.json", "vision.onnx"]
    manifest = json.loads((installed / "clip.json").read_text())
    assert manifest["model_id"] == "test/tiny-clip-b32"
    assert (manifest["dim"], manifest["image_size"], manifest["context_length"]) == (512, 224, 77)
    for name, inputs, output in (("vision", ["pixel_values"], "image_embeds"),
                                 ("text", ["input_ids", "attention_mask"], "text_embeds")):
        graph = onnx.load(str(installed / f"{name}.onnx")).graph
        assert [i.name for i in graph.input] == inputs and [o.name for o in graph.output] == [output]
        assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 512
    # No leftover temporary folders next to the install.
    assert not [p for p in installed.parent.iterdir() if p.name.startswith(".clip-export-")]


def test_verify_export_agrees_with_torch(tiny_clip, installed):
    from cgchat.models.clip_install import verify_export

    diffs = verify_export(tiny_clip[0], installed, batch=2, seq=30)
    assert diffs["vision"] < 1e-4 and diffs["text"] < 1e-4


def test_encoder_matches_torch_on_real_inputs(tiny_clip, encoder):
    """Full pipeline (our preprocessing + tokenizer padding + ONNX) vs torch's get_*_features path."""
    model, tokenizer = tiny_clip
    images = [_open(p) for p in SAMPLE_IMAGES.values()]
    texts = ["dragon", "a dragon texture 4k", "Brick wall, castle!", "x " * 200]  # ragged, one truncated
    got_img, got_txt = encoder.encode_images(images), encoder.encode_texts(texts)

    with torch.no_grad():
        pixels = torch.from_numpy(preprocess(images))
        ref_img = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output).numpy()
        ref_txt = []
        for text in texts:  # one by one, unpadded: padding must not change anything
            enc = tokenizer.encode(text)
            ids = torch.tensor([enc.ids[:77]])
            if len(enc.ids) > 77:
                ids[0, -1] = tokenizer.token_to_id("<|endoftext|>")
            pooled = model.text_model(input_ids=ids, attention_mask=torch.ones_like(ids)).pooler_output
            ref_txt.append(model.text_projection(pooled)[0].numpy())
    ref_img = ref_img / np.linalg.norm(ref_img, axis=1, keepdims=True)
    ref_txt = np.stack(ref_txt) / np.linalg.norm(ref_txt, axis=1, keepdims=True)
    assert np.abs(got_img - ref_img).max() < 1e-4
    assert np.abs(got_txt - ref_txt).max() < 1e-4


def test_encoder_vectors(encoder):
    assert (encoder.model_id, encoder.dim, encoder.image_size, encoder.context_length) == (
        "test/tiny-clip-b32", 512, 224, 77)
    images = [_open(p) for p in SAMPLE_IMAGES.values()]
    vectors = encoder.encode_images(images)
    assert vectors.shape == (len(images), 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    texts = encoder.encode_texts(["dragon", "castle bricks at dusk", ""])
    assert texts.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert encoder.encode_images([]).shape == (0, 512) and encoder.encode_texts([]).shape == (0, 512)


def test_encoder_deterministic_batch_equals_single(encoder):
    images = [_open(p) for p in SAMPLE_IMAGES.values()]
    batch = encoder.encode_images(images, batch_size=3)  # uneven last batch
    again = encoder.encode_images(images)
    np.testing.assert_allclose(batch, again, atol=1e-6)
    for i, image in enumerate(images):
        np.testing.assert_allclose(encoder.encode_images([image])[0], batch[i], atol=1e-5)
    # The same picture, reopened, or passed as a fresh copy: cosine 1.
    first = encoder.encode_images([_open(RENDER), _open(RENDER).copy()])
    assert float(first[0] @ first[1]) == pytest.approx(1.0, abs=1e-6)

    texts = ["dragon", "a much longer query about a dragon texture", "x"]
    together = encoder.encode_texts(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(encoder.encode_texts([text])[0], together[i], atol=1e-5)


def test_reencoded_jpeg_is_close(encoder):
    """Robust even with random weights: a re-encoded copy at the same size is almost the same input."""
    original = _open(RENDER)
    buffer = io.BytesIO()
    original.save(buffer, "JPEG", quality=95)
    copy = Image.open(io.BytesIO(buffer.getvalue()))
    a, b = encoder.encode_images([original, copy])
    assert float(a @ b) > 0.99


def test_missing_or_incomplete_model_dir(tmp_path, installed):
    import shutil

    from cgchat.models.clip_encoder import ClipEncoder, ClipNotInstalled

    with pytest.raises(ClipNotInstalled, match="cgchat models install-clip SOURCE") as info:
        ClipEncoder(tmp_path / "nowhere")
    assert "does not exist" in str(info.value)

    partial = tmp_path / "partial"
    shutil.copytree(installed, partial)
    (partial / "text.onnx").unlink()
    with pytest.raises(ClipNotInstalled, match=r"missing text\.onnx.*install-clip"):
        ClipEncoder(partial)

    (partial / "text.onnx").write_bytes((installed / "text.onnx").read_bytes())
    (partial / "clip.json").write_text("{}")
    with pytest.raises(ClipNotInstalled, match="install-clip"):
        ClipEncoder(partial)


def test_export_needs_a_tokenizer(tiny_clip, tmp_path):
    from cgchat.models.clip_install import export_clip_to_onnx

    with pytest.raises(FileNotFoundError, match="tokenizer"):
        export_clip_to_onnx(tiny_clip[0], tmp_path / "out", "x")


def test_cli_install_clip_from_a_local_checkpoint(tiny_clip, tmp_path):
    """`cgchat models install-clip FOLDER` converts a saved Hugging Face checkpoint into CGCHAT_HOME."""
    import subprocess
    import sys

    from cgchat.models.clip_encoder import ClipEncoder

    model, tokenizer = tiny_clip
    checkpoint = tmp_path / "tiny-clip-checkpoint"
    model.save_pretrained(checkpoint)
    tokenizer.save(str(checkpoint / "tokenizer.json"))
    home = tmp_path / "home"
    env = {**__import__("os").environ, "CGCHAT_HOME": str(home), "HF_HUB_OFFLINE": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cgchat.cli", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    before = cli("models", "status")
    assert before.returncode == 0 and "visual model: not installed" in before.stdout
    assert "install-clip" in before.stdout
    # Random weights cannot name colours: the zero-shot check refuses them and installs nothing.
    refused = cli("models", "install-clip", str(checkpoint))
    assert refused.returncode == 2 and "zero-shot check failed" in refused.stderr, refused.stderr
    assert not (home / "models" / "clip" / "clip.json").exists()
    done = cli("models", "install-clip", str(checkpoint), "--skip-zero-shot")
    assert done.returncode == 0, done.stderr
    assert "cgchat ingest --visual" in done.stdout
    clip = ClipEncoder(home / "models" / "clip")
    assert clip.model_id == "tiny-clip-checkpoint" and clip.dim == 512
    assert "visual model: tiny-clip-checkpoint (512-d)" in cli("models", "status").stdout
    bad = cli("models", "install-clip", str(tmp_path / "no-such-folder"))
    assert bad.returncode == 2 and "cannot load a CLIP checkpoint" in bad.stderr


def test_zero_shot_check_passes_a_model_that_sees_colour(tmp_path):
    """The check is not a formality that nothing passes: a tiny CLIP trained for a few seconds on
    random coloured discs (tests/tiny_clip.train_colour_sense) installs through it. Random weights
    fail it (test above)."""
    from cgchat.models.clip_install import ZERO_SHOT_COLOURS, export_clip_to_onnx, zero_shot_check
    from tests.tiny_clip import build_tiny_clip, train_colour_sense

    model, tokenizer = build_tiny_clip(seed=3)
    train_colour_sense(model, tokenizer)
    out = export_clip_to_onnx(model, tmp_path / "colour-clip", "test/colour-clip", tokenizer, zero_shot=True)
    assert (out / "clip.json").is_file()
    assert zero_shot_check(out) == {c: c for c in ZERO_SHOT_COLOURS}
