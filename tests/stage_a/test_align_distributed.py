"""Encoder alignment under `torchrun --nproc_per_node 2` (gloo) trains like one process with the same global
batches and seed: the same per-epoch losses and counts, the same outputs written once by rank 0, and aligned
features that every rank finds through the index once `run_experiment`'s stage A returns.

Run as a module (`python -m tests.stage_a.test_align_distributed DATA OUT RESULTS`), this file is one rank: it
runs stage A2 into OUT and writes what it got back to RESULTS/rank-<rank>.json."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sicsrec import dist
from sicsrec.config import DataConfig, FeatureConfig, RunConfig, TrainConfig
from sicsrec.features import extract_features
from sicsrec.run.experiment import StageAPlan, run_experiment
from sicsrec.run.prepare import load_data
from sicsrec.stage_a.align import AlignConfig, _collate, _PairRows, _RankBatches, resolve_aligned_source
from tests.helpers import torchrun
from tests.stage_a.test_align import TITLES  # the same eight items: four about cakes, four about sports

# Two ranks compute one process's batch losses from the gathered embeddings; only the encoders' arithmetic
# differs (each rank encodes 2-3 pairs instead of 5: texts pad to other lengths, convolutions see other batch
# sizes). Measured: per-epoch losses within 1.2e-6 relative (the history keeps 6 decimals), features within
# 2e-6 (text) and 8e-6 (image) absolute after 3 AdamW epochs, which moved them by up to 0.09 and 3.7.
LOSS_RTOL = 1e-4
FEATURE_ATOL = 1e-4
# 11 unique pairs in global batches of 5: 5 + 5 + 1, split 2 + 3 over the ranks; the last batch (one pair, so
# no negative: skipped) leaves rank 0 an empty share. Item 7's image does not load.
PAIRS = [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7"), ("1", "2"), ("5", "6"), ("0", "7")]
PAIRS += [("3", "4"), ("0", "2"), ("1", "5"), ("3", "6")]
ALIGN = AlignConfig(optimizer="adamw", lr=3e-4, batch_size=5, epochs=3, num_workers=0, device="cpu")


def write_world(root: Path) -> Path:
    """A csv dataset of 8 items with covers (one corrupt) and 6 users."""
    data = root / "data"
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (48, 32, 3), dtype=np.uint8)).save(data / "images" / f"{i}.jpg")
    (data / "images" / "7.jpg").write_bytes(b"not a jpeg" * 20)
    pd.DataFrame({"item_id": range(8), "title": TITLES}).to_csv(data / "items.csv", index=False)
    inter = [(u, int(i), k) for u in range(6) for k, i in enumerate(rng.permutation(8)[:6])]
    pd.DataFrame(inter, columns=["user_id", "item_id", "order"]).to_csv(data / "interactions.csv", index=False)
    return data


def write_pairs(out: Path) -> None:
    """The mined pairs where stage A2 of `run_experiment` reads them (out/pairs)."""
    (out / "pairs").mkdir(parents=True)
    frame = pd.DataFrame(PAIRS, columns=["target_id", "pair_id"]).assign(user_id="0")
    frame.to_csv(out / "pairs" / "pairs.csv", index=False)


def align_stage(data: Path, out: Path) -> dict:
    """Stage A2 alone through `run_experiment`, as `pipeline` runs it; what this rank got back and reads."""
    cfg = RunConfig(data=DataConfig(str(data)), features=FeatureConfig(), train=TrainConfig(device="cpu", threads=1))
    aligned = run_experiment(cfg, out, (), StageAPlan(align=True, align_cfg=replace(ALIGN)), show_bar=False).aligned
    assert aligned is not None
    items = load_data(DataConfig(str(data))).feature_items()
    return {
        "source": aligned.source,
        "history": aligned.history,
        "counts": aligned.counts,
        "indexed": resolve_aligned_source(items),  # rank 0's index, read once stage A returned
    }


def cache_files(root: Path) -> list[str]:
    """Every file under `root`, relative: what a run wrote, to compare one process's with two ranks'."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_ranks_split_one_process_batches_into_contiguous_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _PairRows(np.zeros((11, 2), dtype=np.int64), None)

    def epochs(gen: torch.Generator) -> list[list[int]]:
        """Two epochs of this rank's batches as the trainer's DataLoader yields them."""
        loader = DataLoader(rows, batch_sampler=_RankBatches(rows, 5, gen), collate_fn=_collate, generator=gen)
        return [batch[0].tolist() if batch else [] for _ in range(2) for batch in loader]

    gen = torch.Generator().manual_seed(7)
    alone = [b[0].tolist() for _ in range(2) for b in DataLoader(rows, batch_size=5, shuffle=True, generator=gen)]
    assert epochs(torch.Generator().manual_seed(7)) == alone  # one process: DataLoader(shuffle=True)'s batches
    monkeypatch.setattr("sicsrec.dist.world_size", lambda: 3)
    shares = []
    for r in range(3):
        monkeypatch.setattr("sicsrec.dist.rank", lambda r=r: r)
        shares.append(epochs(torch.Generator().manual_seed(7)))
    restored = [[k for part in parts for k in part] for parts in zip(*shares, strict=True)]
    assert restored == alone  # concatenated in rank order, the shares are the batches
    assert [len(s[2]) for s in shares] == [0, 0, 1]  # a batch of one pair leaves two ranks an empty share


@pytest.mark.slow
def test_two_ranks_align_like_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_world(tmp_path)
    for run in ("one", "two"):
        write_pairs(tmp_path / run)
    (tmp_path / "ranks").mkdir()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SICSREC_CACHE": str(tmp_path / "cache-two"),
    }
    args = [str(data), str(tmp_path / "two"), str(tmp_path / "ranks")]
    two = torchrun("tests.stage_a.test_align_distributed", args, env)
    assert two.returncode == 0, two.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]

    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "cache-one"))
    threads = torch.get_num_threads()
    try:
        one = align_stage(data, tmp_path / "one")
    finally:
        torch.set_num_threads(threads)

    assert ranks[0] == ranks[1]  # every rank returns the same result and reads rank 0's index
    par = ranks[0]
    assert par["source"] == par["indexed"] == one["source"] == one["indexed"]
    assert par["counts"] == one["counts"]
    assert [h["steps"] for h in par["history"]] == [h["steps"] for h in one["history"]] == [2, 2, 2]
    assert par["history"][-1]["loss"] < par["history"][0]["loss"]  # it trained: the comparison is not vacuous
    for a, b in zip(one["history"], par["history"], strict=True):
        assert a.keys() == b.keys() == {"epoch", "steps", "loss", "t2t", "i2i", "t2i"}
        assert [b[k] for k in ("loss", "t2t", "i2i", "t2i")] == pytest.approx(
            [a[k] for k in ("loss", "t2t", "i2i", "t2i")], rel=LOSS_RTOL
        )

    # Rank 0 alone wrote: the same files as one process (one entry per modality, the index, no temporary file).
    assert cache_files(tmp_path / "cache-two") == cache_files(tmp_path / "cache-one")
    assert cache_files(tmp_path / "two") == cache_files(tmp_path / "one")
    summary_one = json.loads((tmp_path / "one/align/align.json").read_text())
    summary_two = json.loads((tmp_path / "two/align/align.json").read_text())
    assert summary_one.keys() == summary_two.keys() and summary_one["provenance"].keys() == (
        summary_two["provenance"].keys()
    )

    items = load_data(DataConfig(str(data))).feature_items()
    feats = {
        run: extract_features(items, source=one["source"], cache_dir=tmp_path / f"cache-{run}", progress=False)
        for run in ("one", "two")
    }
    assert feats["one"].image_mask.tolist() == feats["two"].image_mask.tolist() == [True] * 7 + [False]
    for modality in ("text", "image"):
        a, b = getattr(feats["one"], modality), getattr(feats["two"], modality)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=0, atol=FEATURE_ATOL)


if __name__ == "__main__":  # one torchrun rank: align, then record what this rank got back
    torch.set_num_threads(1)
    result = align_stage(Path(sys.argv[1]), Path(sys.argv[2]))
    (Path(sys.argv[3]) / f"rank-{dist.rank()}.json").write_text(json.dumps(result))
