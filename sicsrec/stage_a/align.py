"""Stage A2: fine-tune the text and image encoders on the mined pairs, then cache every item's aligned features.

Trainable: the last block of each encoder (`Encoder.last_block_parameters()`) and one projection
head per modality (MLP in -> in/2 -> 64, L2-normalised; trained: spec decision 3); the rest is
frozen. The encoders stay in eval mode (no dropout, frozen batch-norm statistics), so the
features they produce afterwards come from the same deterministic `pool` (decision 4). Losses,
each an InfoNCE at temperature 0.05, summed with equal weights and each switchable:

* t2t: target text vs pair text, the batch's other pairs as negatives (symmetric);
* i2i: the same on images (rows where both images load);
* t2i: CLIP-style symmetric loss between each batch item's own text and image.

In-batch negatives that are the same item as the positive or as the anchor are left out of the
denominator. Text-only data trains t2t alone. Afterwards every item's POOLED encoder output
(e.g. 384-d MiniLM, 1280-d EfficientNet; not the 64-d heads, since stage B's MLPs consume the
encoder dims) is stored in the feature cache under `source="aligned:<provenance hash>"`, with
the provenance (encoders, pairs file hash, settings, losses) in each entry's sidecar, and the
cache root's `aligned_index.json` points this content at it, so `FeatureConfig(source="aligned")`
resolves through `resolve_aligned_source`.

Under torchrun the training is data-parallel: every rank shuffles the pairs with the same seed, so all
draw the same global batches, and each encodes its contiguous share of every batch. The losses need the
whole batch (its other pairs are the negatives), so the shares' embeddings are gathered and every rank
computes the whole batch's losses, backpropagating into its own rows; the ranks' gradients are then
summed, which gives one process's gradient of the whole batch. The aligned features are extracted
sharded over the ranks; rank 0 alone writes the cache, the index and align.json, and every rank
returns once they are written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import operator
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, default_collate
from tqdm.auto import tqdm

from sicsrec import dist
from sicsrec.data.schema import Dataset as RecDataset
from sicsrec.features.cache import FeatureCache, cache_key
from sicsrec.features.encoders import Encoder, EncoderSpec, encoder_spec, get_encoder
from sicsrec.features.extract import (
    EncoderRef,
    FeaturesNotFound,
    extract_features,
    feature_key,
    image_digest,
    item_content,
    store_features,
    text_digest,
)
from sicsrec.features.images import ImageDataset, default_num_workers
from sicsrec.stage_a.pairs import read_pairs
from sicsrec.utils import atomic_write_text, resolve_device, seed_everything

log = logging.getLogger("sicsrec")

ALIGN_FORMAT = 1  # bump when training semantics change, so old aligned sources stop matching
INDEX_FILE = "aligned_index.json"
LOSSES = ("t2t", "i2i", "t2i")


class AlignedFeaturesMissing(FeaturesNotFound, ValueError):
    """No aligned features for this content (run `python -m sicsrec align` first)."""


@dataclass
class AlignConfig:
    """Stage-A2 settings; the defaults are the spec's (SGD lr 1e-5, batch 128, 10 epochs, tau 0.05)."""

    t2t: bool = True
    i2i: bool = True
    t2i: bool = True
    temperature: float = 0.05
    proj_dim: int = 64
    optimizer: str = "sgd"  # "sgd" | "adamw"
    lr: float = 1e-5
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    seed: int = 2025
    # Decision 3: the projection heads train with the encoders (False: the reference left them out of
    # the optimiser, so the encoders learn through randomly initialised, frozen heads).
    train_heads: bool = True
    use_images: bool | None = None  # None: on when any item has an image path
    text_field: str = "both"  # the item text aligned (FeatureConfig.text_field of the runs that read it)
    device: str = "auto"
    num_workers: int | None = None  # image-decoding processes (None: min(2, CPUs))

    def training_settings(self) -> dict:
        """The settings that change the result (device and worker count do not; the default text field is
        left out so aligned features cached before the choice existed keep their provenance)."""
        skip = ("device", "num_workers") + (("text_field",) if self.text_field == "both" else ())
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class AlignResult:
    """Where the aligned features went and how training went (per-epoch mean losses in `history`)."""

    source: str
    provenance: dict
    history: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False  # the features for this provenance were already cached


def _spec(ref: EncoderRef, modality: str) -> EncoderSpec:
    """Spec of an encoder given by registry name (no weights loaded) or instance."""
    return ref.spec if isinstance(ref, Encoder) else encoder_spec(ref, modality=modality)


def _with_images(items: pd.DataFrame, use_images: bool | None) -> bool:
    """The image-branch switch as `extract_features` resolves it."""
    return any(item_content(items)[2]) if use_images is None else bool(use_images)


def _index_key(items: pd.DataFrame, text_encoder: EncoderRef, image_encoder: EncoderRef | None) -> str:
    """Key of a dataset's content + encoders in the aligned index (image content is checked separately)."""
    ids, texts, _ = item_content(items)
    image = _spec(image_encoder, "image").to_dict() if image_encoder is not None else None
    return cache_key("aligned-index", ids, text_digest(texts), _spec(text_encoder, "text").to_dict(), image)


def _read_index(root: Path) -> dict:
    """The aligned-features index ({} when absent or unreadable: lookups then find no aligned features)."""
    try:
        return _parse_index(root / INDEX_FILE)
    except (OSError, ValueError):
        return {}


def _parse_index(path: Path) -> dict:
    """The index file's object; OSError/ValueError when it cannot be read or is not a JSON object."""
    index = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(index, dict):
        raise ValueError("not a JSON object")
    return index


def _cached(
    items: pd.DataFrame, source: str, text_encoder: EncoderRef, image_encoder: EncoderRef | None, cache: FeatureCache
) -> bool:
    """True when the cache holds `source` features of these items for every modality in use."""
    _ids, texts, paths = item_content(items)
    keys = [feature_key(_spec(text_encoder, "text"), source, text_digest(texts))]
    if image_encoder is not None:
        keys.append(feature_key(_spec(image_encoder, "image"), source, image_digest(paths)))
    return all(cache.get(k) is not None for k in keys)


def resolve_aligned_source(
    items: pd.DataFrame,
    text_encoder: EncoderRef = "minilm",
    image_encoder: EncoderRef | None = "efficientnet-lite0",
    use_images: bool | None = None,
    cache_dir: str | Path | None = None,
) -> str:
    """The latest "aligned:<hash>" source cached for these items and encoders, or AlignedFeaturesMissing."""
    cache = FeatureCache(cache_dir)
    image_encoder = image_encoder if _with_images(items, use_images) else None
    entry = _read_index(cache.root).get(_index_key(items, text_encoder, image_encoder))
    if entry is None or not _cached(items, entry["source"], text_encoder, image_encoder, cache):
        what = "were made for different content or were removed" if entry else "do not exist"
        raise AlignedFeaturesMissing(
            f"aligned features for this dataset and these encoders {what} (cache {cache.root}); run "
            "`python -m sicsrec mine-pairs --data <DATA> --out <DIR>` then `python -m sicsrec align --data <DATA> "
            "--pairs <DIR>` first (or `python -m sicsrec pipeline`), or use --features raw"
        )
    return entry["source"]


def _write_index(root: Path, key: str, entry: dict) -> None:
    """Point the index entry `key` at `entry` (read-modify-write, replaced atomically). An unreadable
    index is kept aside as <index>.corrupt rather than overwritten, so its entries can be recovered."""
    path, index = root / INDEX_FILE, {}
    if path.is_file():
        try:
            index = _parse_index(path)
        except (OSError, ValueError) as e:
            kept = path.with_name(path.name + ".corrupt")
            path.replace(kept)
            log.warning("%s: unreadable (%s); kept as %s and started a new index", path, e, kept)
    index[key] = entry
    atomic_write_text(root / INDEX_FILE, json.dumps(index, indent=1, ensure_ascii=False))


def info_nce(
    a: torch.Tensor, b: torch.Tensor, ids_a: torch.Tensor, ids_b: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE of row-aligned positives a[i] <-> b[i] (L2-normalised) with in-batch negatives.

    A negative that is the positive's item or the anchor's own item (duplicates in the batch) is
    left out of the denominator.
    """
    logits = a @ b.T / temperature
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    labels = torch.arange(len(a), device=a.device)
    same_ab = (ids_b[None, :] == ids_b[:, None]) | (ids_b[None, :] == ids_a[:, None])  # row i of a -> b
    same_ba = (ids_a[None, :] == ids_a[:, None]) | (ids_a[None, :] == ids_b[:, None])  # row i of b -> a
    loss_ab = F.cross_entropy(logits.masked_fill(same_ab & ~eye, float("-inf")), labels)
    loss_ba = F.cross_entropy(logits.T.masked_fill(same_ba & ~eye, float("-inf")), labels)
    return (loss_ab + loss_ba) / 2


def projection_head(dim: int, out: int) -> nn.Module:
    """MLP dim -> dim/2 -> out (the SFT head; trained, spec decision 3)."""
    return nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, out))


class _PairRows(Dataset):
    """Pair row k -> (k, target image, valid, pair image, valid); images decoded in DataLoader workers."""

    def __init__(self, pairs: np.ndarray, images: ImageDataset | None) -> None:
        self.pairs, self.images = pairs, images

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> tuple:
        if self.images is None:
            return (k,)
        target, pair = self.pairs[k]
        return (k, *self.images[int(target)], *self.images[int(pair)])


class _RankBatches(Sampler[list[int]]):
    """This rank's contiguous share of each shuffled global batch of pair rows (the whole batch in one process).

    Every rank shuffles with the same seeded generator, so the global batches, and with them the
    optimisation path, do not depend on the number of processes; each rank decodes its share's images only."""

    def __init__(self, rows: _PairRows, batch_size: int, generator: torch.Generator) -> None:
        # What DataLoader(shuffle=True, batch_size=..., generator=...) builds: one process keeps its batches.
        self.batches = BatchSampler(RandomSampler(rows, generator=generator), batch_size, drop_last=False)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[dist.shard(len(batch))]

    def __len__(self) -> int:
        return len(self.batches)


def _collate(rows: list[tuple]) -> list:
    """default_collate, and [] for a rank whose share of a batch is empty (more ranks than pairs in it)."""
    return default_collate(rows) if rows else []


def _pair_indices(pairs: pd.DataFrame, ids: list[str]) -> tuple[np.ndarray, dict]:
    """Unique unordered pairs as row indices into `ids` [P, 2], and what was dropped."""
    index = {iid: i for i, iid in enumerate(ids)}
    t = pairs["target_id"].astype(str).map(index)
    p = pairs["pair_id"].astype(str).map(index)
    known = t.notna() & p.notna()
    rows = (
        np.stack([t[known].to_numpy(np.int64), p[known].to_numpy(np.int64)], 1)
        if known.any()
        else np.zeros((0, 2), dtype=np.int64)
    )
    self_pairs = rows[:, 0] == rows[:, 1]
    unique = np.unique(np.sort(rows[~self_pairs], axis=1), axis=0)
    counts = {
        "pairs_in_file": len(pairs),
        "unknown_items": int((~known).sum()),
        "self_pairs": int(self_pairs.sum()),
        "duplicates": int((~self_pairs).sum() - len(unique)),
        "pairs_used": len(unique),
    }
    return unique, counts


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pooled(enc: Encoder, batch: list | torch.Tensor) -> torch.Tensor:
    """Differentiable pooled features of raw texts (list of str) or preprocessed image tensors."""
    return enc.pool(enc.preprocess(batch) if isinstance(batch, list) else batch.to(enc.device))


def align(
    dataset: RecDataset,
    pairs: str | Path,
    out: str | Path | None = None,
    config: AlignConfig | None = None,
    text_encoder: EncoderRef = "minilm",
    image_encoder: EncoderRef | None = "efficientnet-lite0",
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    progress_callback: Callable[[int, int], None] | None = None,
) -> AlignResult:
    """Fine-tune on the pairs file (pairs.csv or its folder), cache all items' aligned features, index them.

    Encoders are registry names or `Encoder` instances (e.g. a CLIP tower; fine-tuned in place).
    When features for the same provenance are already cached this returns at once (`skipped=True`)
    unless `force`. `progress_callback(done, total)` is called after every optimiser step; raising
    KeyboardInterrupt from it stops training with nothing cached (as Ctrl-C does).
    Writes out/align.json (settings, loss history, counts, source) when `out` is given.
    """
    started = time.perf_counter()
    cfg = config or AlignConfig()
    if cfg.optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
    pairs_csv = Path(pairs) / "pairs.csv" if Path(pairs).is_dir() else Path(pairs)
    pair_table, pair_meta = read_pairs(pairs_csv)
    items = dataset.feature_items(cfg.text_field)
    ids, texts, paths = item_content(items)
    with_images = _with_images(items, cfg.use_images)
    if with_images and image_encoder is None:
        raise ValueError("the dataset has images: give an image_encoder or use_images=False")
    image_encoder = image_encoder if with_images else None
    losses = [name for name in LOSSES if getattr(cfg, name) and (name == "t2t" or with_images)]
    if not losses:
        raise ValueError("no loss left to train: enable t2t, or i2i/t2i on a dataset with images")
    provenance = {
        "format": ALIGN_FORMAT,
        "text_encoder": _spec(text_encoder, "text").to_dict(),
        "image_encoder": _spec(image_encoder, "image").to_dict() if image_encoder is not None else None,
        "pairs_file": str(pairs_csv.resolve()),
        "pairs_sha256": _file_sha256(pairs_csv),
        "pairs_backend": pair_meta.get("backend"),
        "pairs_fallback": pair_meta.get("fallback"),
        "settings": cfg.training_settings(),
        "losses": losses,
    }
    source = "aligned:" + cache_key({k: v for k, v in provenance.items() if k != "pairs_file"})[:16]
    cache = FeatureCache(cache_dir)
    index_key = _index_key(items, text_encoder, image_encoder)
    device = dist.init(resolve_device(cfg.device))  # joins torchrun's process group when launched by it
    cached = not force and _cached(items, source, text_encoder, image_encoder, cache)
    if dist.all_reduce_sum(torch.tensor([int(not cached)])).item() == 0:  # the ranks train together or not at all
        log.info("align: features for %s are already cached; nothing to train", source)
        if dist.is_main():
            _write_index(
                cache.root,
                index_key,
                {
                    "source": source,
                    "provenance": provenance,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
        dist.barrier()  # the other ranks return once the index points at these features
        previous = _load_summary(out, source)
        return AlignResult(
            source,
            provenance,
            previous.get("history", []),
            previous.get("counts", {}),
            time.perf_counter() - started,
            skipped=True,
        )

    rows, counts = _pair_indices(pair_table, ids)
    if len(rows) < 2:
        raise ValueError(f"{pairs_csv}: {len(rows)} usable pair(s); contrastive training needs at least 2")
    seed_everything(cfg.seed)
    encoders = {
        "text": text_encoder
        if isinstance(text_encoder, Encoder)
        else get_encoder(text_encoder, device=device, modality="text")
    }
    if image_encoder is not None:
        encoders["image"] = (
            image_encoder
            if isinstance(image_encoder, Encoder)
            else get_encoder(image_encoder, device=device, modality="image")
        )
    heads = {
        m: projection_head(enc.dim, cfg.proj_dim).to(enc.device).requires_grad_(cfg.train_heads)
        for m, enc in encoders.items()
    }
    trainable: list[nn.Parameter] = []
    for m, enc in encoders.items():
        enc.module.eval().requires_grad_(False)
        block = enc.last_block_parameters()
        for p in block:
            p.requires_grad_(True)
        trainable += [*block, *(heads[m].parameters() if cfg.train_heads else [])]
    # Every rank starts from rank 0's weights, frozen heads included (as DDP would); they stay equal because
    # every rank then applies the same summed gradient.
    dist.broadcast_([*trainable, *(p for h in heads.values() for p in h.parameters() if not p.requires_grad)])
    opt = (
        torch.optim.SGD(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "sgd"
        else torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    )
    counts["trainable_parameters"] = sum(p.numel() for p in trainable)

    image_losses = "image" in encoders and bool({"i2i", "t2i"} & set(losses))
    images = ImageDataset(paths, encoders["image"].transform) if image_losses else None
    workers = (default_num_workers() if cfg.num_workers is None else cfg.num_workers) if images is not None else 0
    pair_data, gen = _PairRows(rows, images), torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        pair_data,
        batch_sampler=_RankBatches(pair_data, cfg.batch_size, gen),
        collate_fn=_collate,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=gen,
    )
    pair_rows = torch.as_tensor(rows)
    history: list[dict] = []
    bad_images: set[int] = set()
    log.info(
        "align: %d pairs, losses %s, %s lr %g, batch %d, %d epochs, %d trainable parameters, on %s",
        len(rows),
        "+".join(losses),
        cfg.optimizer,
        cfg.lr,
        cfg.batch_size,
        cfg.epochs,
        counts["trainable_parameters"],
        device,
    )
    with tqdm(
        total=cfg.epochs * len(loader),
        desc="align",
        unit="step",
        disable=not (progress and dist.is_main()),  # one bar under torchrun
        dynamic_ncols=True,
    ) as bar:
        for epoch in range(1, cfg.epochs + 1):
            sums = dict.fromkeys(["loss", *losses], 0.0)  # pair-weighted, so a short last batch counts less
            steps = seen = 0
            for batch_no, batch in enumerate(loader, 1):
                pair_ids, valid = _whole_batch(batch, pair_rows, image_losses)  # [B, 2] item rows, [2B] or None
                b = len(pair_ids)
                if b < 2:
                    bar.update(1)
                    continue  # one pair has no in-batch negative
                flat = torch.cat([pair_ids[:, 0], pair_ids[:, 1]])  # [2B]: targets, then their pairs
                if valid is not None:
                    bad_images.update(int(i) for i in flat[~valid])
                mine = _embed(cfg, encoders, heads, texts, pair_ids[dist.shard(b)], batch, image_losses)
                parts = _batch_losses(cfg, losses, *_gather_embeddings(*mine), flat, valid)
                total = functools.reduce(operator.add, parts.values())  # a tensor, summed in order
                opt.zero_grad(set_to_none=True)
                if total.requires_grad:  # False only on a rank without pairs in this batch: nothing to backpropagate
                    total.backward()
                # Summed by hand rather than through DistributedDataParallel: the loss couples the ranks (a
                # batch's other pairs are its negatives, gathered mid-step), so each rank's gradient covers
                # its own rows only and their sum, not DDP's average, is the batch's gradient; the trainable
                # parts are the last blocks of otherwise frozen encoders, which DDP would wrap whole; and a
                # rank without pairs or readable images in a batch leaves parameters unused, which DDP
                # tolerates only with find_unused_parameters and a forward pass on every rank.
                dist.sum_gradients(trainable)
                opt.step()
                steps, seen = steps + 1, seen + b
                sums["loss"] += total.item() * b  # the whole batch's loss: the same on every rank
                for name, value in parts.items():
                    sums[name] += value.item() * b
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{total.item():.4f}")
                if progress_callback is not None:
                    progress_callback((epoch - 1) * len(loader) + batch_no, cfg.epochs * len(loader))
            history.append({"epoch": epoch, "steps": steps, **{n: round(v / max(seen, 1), 6) for n, v in sums.items()}})
            log.info(
                "align epoch %d: %s",
                epoch,
                " ".join(f"{n}={v:.4f}" for n, v in history[-1].items() if n not in ("epoch", "steps")),
            )
    del loader  # stop the decoding workers now
    counts["pair_items_without_image"] = len(bad_images)
    train_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as scratch:  # computed once, stored once with the full provenance
        feats = extract_features(
            items,
            text_encoder=encoders["text"],
            image_encoder=encoders.get("image"),
            use_images=with_images,
            cache_dir=scratch,
            progress=progress and dist.is_main(),
            source=source,
            num_workers=cfg.num_workers,
        )
    provenance = {
        **provenance,
        "history": history,
        "counts": counts,
        "train_seconds": round(train_seconds, 2),
        "device": str(device),
    }
    if dist.is_main():
        store_features(
            items,
            feats,
            source,
            text_encoder=encoders["text"],
            image_encoder=encoders.get("image"),
            cache_dir=cache.root,
            provenance=provenance,
        )
        _write_index(
            cache.root,
            index_key,
            {"source": source, "provenance": provenance, "created": datetime.now(UTC).isoformat(timespec="seconds")},
        )
    counts["items"] = len(ids)
    counts["items_without_image"] = int(feats.meta["missing_images"])
    result = AlignResult(source, provenance, history, counts, time.perf_counter() - started)
    if out is not None and dist.is_main():
        atomic_write_text(
            Path(out) / "align.json",
            json.dumps(
                {
                    "source": source,
                    "seconds": round(result.seconds, 2),
                    "train_seconds": round(train_seconds, 2),
                    "counts": counts,
                    "history": history,
                    "provenance": provenance,
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    dist.barrier()  # every rank returns once rank 0 wrote the cache, the index and align.json
    return result


def _load_summary(out: str | Path | None, source: str) -> dict:
    """out/align.json when it describes `source`, else {}."""
    try:
        summary = json.loads((Path(out) / "align.json").read_text(encoding="utf-8")) if out is not None else {}
    except (OSError, ValueError):
        return {}
    return summary if summary.get("source") == source else {}


def _whole_batch(batch: list, pair_rows: torch.Tensor, with_images: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole batch's item rows [B, 2] (target, pair) and whether their images load ([2B] bool, targets then
    pairs; None without image losses), gathered from every rank's share in rank order (batch from `_PairRows`)."""
    width = 3 if with_images else 1  # pair row (, target image loads, pair image loads)
    local = torch.zeros(0, width, dtype=torch.long)  # [b, width]; b = 0 when this rank's share is empty
    if batch:
        local = torch.stack([t.long() for t in (batch[0], *batch[2::2])], 1)
    whole = dist.all_gather_rows(local.reshape(-1)).reshape(-1, width)  # [B, width]
    valid = torch.cat([whole[:, 1], whole[:, 2]]).bool() if with_images else None
    return pair_rows[whole[:, 0]], valid


def _embed(
    cfg: AlignConfig,
    encoders: dict[str, Encoder],
    heads: dict[str, nn.Module],
    texts: list[str],
    pair_ids: torch.Tensor,
    batch: list,
    with_images: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This rank's embeddings of its share of a batch (pair_ids [b, 2] item rows): text [2b, proj_dim] and image
    (zero rows where it does not load; None without image losses), targets then their pairs."""
    b = len(pair_ids)
    if b == 0:  # more ranks than pairs in this batch
        empty = torch.zeros(0, cfg.proj_dim, device=encoders["text"].device)
        return empty, empty if with_images else None
    flat = torch.cat([pair_ids[:, 0], pair_ids[:, 1]])  # [2b]: targets, then their pairs
    z_text = F.normalize(heads["text"](_pooled(encoders["text"], [texts[int(i)] for i in flat])), dim=-1)
    if not with_images:
        return z_text, None
    _, x_t, v_t, x_p, v_p = batch
    valid = torch.cat([v_t, v_p]).bool()
    z_image = torch.zeros(2 * b, cfg.proj_dim, device=z_text.device)
    if valid.any():
        pooled = _pooled(encoders["image"], torch.cat([x_t, x_p])[valid])
        rows = valid.nonzero().squeeze(1).to(z_text.device)
        z_image = z_image.index_put((rows,), F.normalize(heads["image"](pooled), dim=-1).to(z_text.device))
    return z_text, z_image


def _gather_embeddings(z_text: torch.Tensor, z_image: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole batch's embeddings [2B, proj_dim] (targets, then their pairs, as one process orders them) from
    every rank's [2b, proj_dim]; autograd reaches this rank's rows only (`dist.all_gather_rows_keep_grad`)."""
    if not dist.active():
        return z_text, z_image
    b = len(z_text) // 2
    halves = [z_text[:b], z_text[b:], *([] if z_image is None else [z_image[:b], z_image[b:]])]
    whole = dist.all_gather_rows_keep_grad(torch.cat(halves, 1)).chunk(len(halves), 1)  # each [B, proj_dim]
    return torch.cat(whole[:2]), torch.cat(whole[2:]) if z_image is not None else None


def _batch_losses(
    cfg: AlignConfig,
    losses: list[str],
    z_text: torch.Tensor,
    z_image: torch.Tensor | None,
    flat: torch.Tensor,
    valid: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """The enabled losses of one whole batch from its embeddings [2B, proj_dim] (flat [2B] item rows and valid
    [2B] readable images: targets, then their pairs)."""
    b = len(flat) // 2
    out: dict[str, torch.Tensor] = {}
    if "t2t" in losses:
        out["t2t"] = info_nce(z_text[:b], z_text[b:], flat[:b], flat[b:], cfg.temperature)
    if z_image is None or valid is None:  # no image losses: the loader decodes no images
        return out
    zero = z_text.sum() * 0.0
    if "i2i" in losses:
        both = valid[:b] & valid[b:]
        out["i2i"] = (
            info_nce(z_image[:b][both], z_image[b:][both], flat[:b][both], flat[b:][both], cfg.temperature)
            if both.sum() >= 2
            else zero
        )
    if "t2i" in losses:
        _, first = np.unique(flat.numpy(), return_index=True)  # each batch item once
        keep = torch.as_tensor(first)[valid[torch.as_tensor(first)]]
        out["t2i"] = (
            info_nce(z_text[keep], z_image[keep], flat[keep], flat[keep], cfg.temperature) if len(keep) >= 2 else zero
        )
    return out
