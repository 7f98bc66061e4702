"""Leave-one-out split and the tensors every model trains and evaluates on, built once.

Per user (chronological): the last item is test, the one before is validation, the rest is the
training part. Training targets are every item of the training part but the first, each predicted
from (at most) the `max_len` items before it — RecBole's one-row-per-prefix expansion. Instead of
materialising every prefix, a sequence is stored once (right-padded) with a target at every
position, so one causal pass scores all its prefixes. Sequences longer than max_len+1 are cut into
overlapping windows; each target is counted in exactly one window.

`rows="prefixes"` materialises RecBole's rows instead (one row per target, its last `max_len` items):
~10-20x the compute, but every target then draws its own dropout masks and a batch mixes targets of
many users. On long-sequence data that makes each epoch worth more (docs/BENCHMARKS.md, MovieLens
parity); the loss is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sicsrec.data.schema import DataError, Dataset


@dataclass
class EvalSet:
    """One next-item query per user: right-padded history (U, L), its length, the target index."""

    history: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor


@dataclass
class Split:
    """Item indices 1..N map to `item_ids[i-1]`; 0 is padding."""

    name: str
    item_ids: np.ndarray  # (N,) str, the dataset's own ids
    user_ids: np.ndarray  # (U,) str
    train_inputs: torch.Tensor  # (W, L) right-padded windows
    train_targets: torch.Tensor  # (W, L) next item at each position, 0 = no loss there
    train_lengths: torch.Tensor  # (W,)
    valid: EvalSet
    test: EvalSet
    item_counts: torch.Tensor  # (N+1,) interactions per item in the training parts (popularity)
    max_len: int

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_train_targets(self) -> int:
        return int((self.train_targets > 0).sum())

    def index_of(self) -> dict[str, int]:
        """The dataset's item id -> item index (1..N)."""
        return {iid: i + 1 for i, iid in enumerate(self.item_ids)}

    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.user_ids),
            "items": self.n_items,
            "train_targets": self.n_train_targets,
            "train_windows": int(self.train_inputs.shape[0]),
            "valid": int(self.valid.targets.numel()),
            "test": int(self.test.targets.numel()),
        }


def _pad_right(seqs: list[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(seqs), width), dtype=np.int64)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    mask = np.arange(width)[None, :] < lengths[:, None]  # (n, width)
    if len(seqs):
        out[mask] = np.concatenate(seqs)
    return out


def _windows(seq: np.ndarray, max_len: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) windows over one training part; targets already counted are zeroed."""
    n = len(seq)
    if n <= max_len + 1:
        return [(seq[:-1], seq[1:])]
    starts = [*list(range(0, n - 1 - max_len, stride)), n - 1 - max_len]
    out, counted = [], 0  # counted = index of the last target already assigned
    for o in starts:
        inp, tgt = seq[o : o + max_len], seq[o + 1 : o + max_len + 1].copy()
        first_new = counted + 1 - (o + 1)  # position in this window of the first uncounted target
        if first_new > 0:
            tgt[:first_new] = 0
        counted = o + max_len
        out.append((inp, tgt))
    return out


TRAIN_ROWS = ("windows", "prefixes")


def _prefix_rows(inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split stride-1 windows into one row per target: (inputs, targets, lengths), target last."""
    w, j = np.nonzero(targets)  # (M,) window and position of every target
    keep = np.arange(inputs.shape[1])[None, :] <= j[:, None]  # (M, L): the target's context
    rows = inputs[w] * keep
    tgt = np.zeros_like(rows)
    tgt[np.arange(len(w)), j] = targets[w, j]
    return rows, tgt, j + 1


def build_split(ds: Dataset, max_len: int = 50, window_stride: int | None = None, rows: str = "windows") -> Split:
    """Leave-one-out split of a validated dataset (each user needs >= 3 interactions)."""
    if rows not in TRAIN_ROWS:
        raise ValueError(f"rows must be one of {', '.join(TRAIN_ROWS)}, got {rows!r}")
    if rows == "prefixes" and window_stride not in (None, 1):
        # Prefix rows give every target its full last-max_len context: a stride has no meaning there.
        raise ValueError(
            f"window_stride {window_stride} does not apply to prefix rows (each target keeps its full context)"
        )
    window_stride = 1 if rows == "prefixes" else window_stride or max(1, max_len // 2)
    if window_stride < 1 or window_stride > max_len:
        raise ValueError(f"window_stride must be in [1, {max_len}], got {window_stride}")
    inter = ds.interactions
    item_ids = np.asarray(sorted(inter["item_id"].unique(), key=_id_sort_key), dtype=object)
    index = pd.Series(np.arange(1, len(item_ids) + 1), index=item_ids)
    idx = index.loc[inter["item_id"].to_numpy()].to_numpy()
    users, starts, lens = np.unique(inter["user_id"].to_numpy(), return_index=True, return_counts=True)
    order = np.argsort(starts)  # users in the order of their rows (the loader sorts them by id)
    users, starts, lens = users[order], starts[order], lens[order]
    if (lens < 3).any():
        raise DataError(
            f"{ds.name}: {int((lens < 3).sum())} users have fewer than 3 interactions; leave-one-out needs 3"
        )

    seqs = [idx[s : s + n] for s, n in zip(starts, lens)]
    train_parts = [s[:-2] for s in seqs]
    windows = [w for part in train_parts for w in _windows(part, max_len, window_stride) if len(w[1])]
    valid_hist = [p[-max_len:] for p in train_parts]
    test_hist = [s[:-1][-max_len:] for s in seqs]

    inputs, targets = _pad_right([w[0] for w in windows], max_len), _pad_right([w[1] for w in windows], max_len)
    lengths = np.fromiter((len(w[0]) for w in windows), dtype=np.int64, count=len(windows))
    if rows == "prefixes":
        inputs, targets, lengths = _prefix_rows(inputs, targets)

    counts = np.bincount(np.concatenate(train_parts), minlength=len(item_ids) + 1)
    t = lambda a: torch.as_tensor(a, dtype=torch.long)
    return Split(
        name=ds.name,
        item_ids=item_ids,
        user_ids=np.asarray(users, dtype=object),
        train_inputs=t(inputs),
        train_targets=t(targets),
        train_lengths=t(lengths),
        valid=EvalSet(t(_pad_right(valid_hist, max_len)), t([len(h) for h in valid_hist]), t([s[-2] for s in seqs])),
        test=EvalSet(t(_pad_right(test_hist, max_len)), t([len(h) for h in test_hist]), t([s[-1] for s in seqs])),
        item_counts=t(counts),
        max_len=max_len,
    )


def _id_sort_key(x: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then the rest as strings (stable item indices across runs)."""
    return (0, int(x)) if str(x).isascii() and str(x).isdigit() else (1, str(x))  # not '²': int() refuses it
