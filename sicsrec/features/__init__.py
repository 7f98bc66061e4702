"""Frozen content features: text/image encoders (registry), safe image loading, the on-disk cache, extraction."""

from sicsrec.features.cache import CacheEntry, FeatureCache, cache_key, default_cache_dir
from sicsrec.features.encoders import (
    ENCODERS,
    ClipEncoder,
    EfficientNetLite0Encoder,
    Encoder,
    EncoderSpec,
    EncoderUnavailableError,
    MiniLMEncoder,
    encoder_spec,
    get_encoder,
)
from sicsrec.features.extract import (
    ExtractionCancelled,
    FeaturesNotFound,
    ItemFeatures,
    extract_features,
    feature_key,
    image_digest,
    item_content,
    load_features,
    store_features,
    text_digest,
)
from sicsrec.features.images import ImageDataset, default_num_workers, image_loader, load_image

__all__ = [
    "ENCODERS",
    "CacheEntry",
    "ClipEncoder",
    "EfficientNetLite0Encoder",
    "Encoder",
    "EncoderSpec",
    "EncoderUnavailableError",
    "ExtractionCancelled",
    "FeatureCache",
    "FeaturesNotFound",
    "ImageDataset",
    "ItemFeatures",
    "MiniLMEncoder",
    "cache_key",
    "default_cache_dir",
    "default_num_workers",
    "encoder_spec",
    "extract_features",
    "feature_key",
    "get_encoder",
    "image_digest",
    "image_loader",
    "item_content",
    "load_features",
    "load_image",
    "store_features",
    "text_digest",
]
