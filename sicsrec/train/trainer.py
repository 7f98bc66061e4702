"""One training loop for every model: batches of ~`batch_size` prediction targets, full-softmax
loss (+ the model's aux terms), a validation metric after each epoch (HR@10 by default), early
stopping, best epoch kept.

Under torchrun the loop is data-parallel (DDP): every rank draws the same global batches and trains on
its share of each, weighted so the synced gradient is the whole batch's; validation is sharded and
gathered, so early stopping takes the same decision on every rank; only rank 0 saves and reports.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sicsrec import dist
from sicsrec.config import STOP_METRICS, TrainConfig
from sicsrec.data.split import Split
from sicsrec.eval.evaluate import evaluate_model
from sicsrec.events import EpochEvent, FitDone, ProgressEvent, ProgressHook, StepEvent
from sicsrec.model.base import LossOutput, SeqRecModel
from sicsrec.utils import release_memory

if TYPE_CHECKING:
    from sicsrec.train.state import StateStore

log = logging.getLogger("sicsrec.train")


@dataclass
class EpochLog:
    epoch: int
    loss: dict[str, float]
    valid: dict[str, float]
    seconds: float  # training pass only
    samples_per_s: float
    eval_seconds: float = 0.0


@dataclass
class FitResult:
    """What one fit did: the best epoch (1-based), its valid metrics, every epoch, and why it stopped."""

    stage: str
    best_epoch: int
    best_valid: dict[str, float]
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "max_epochs"  # max_epochs | early_stop | cancelled | diverged

    @property
    def epochs(self) -> int:
        return len(self.history)


@dataclass
class FitState:
    """Where a fit stands after an epoch: its result so far, the best weights and the early-stopping counters."""

    result: FitResult
    best: dict[str, torch.Tensor] | None = None
    best_score: float = -math.inf
    bad_epochs: int = 0
    finished: bool = False  # the fit ended (early stop or max epochs): continuing only restores its best weights

    @property
    def epoch(self) -> int:
        return self.result.epochs


def target_batches(
    n_targets: torch.Tensor, batch_size: int, gen: torch.Generator, lengths: torch.Tensor | None = None, pool: int = 0
) -> list[torch.Tensor]:
    """Shuffle windows and group consecutive ones so each batch holds about `batch_size` targets.

    With `lengths` and `pool` > 1, windows are sorted by length within pools of `pool` batches'
    worth of targets and the batches are shuffled afterwards: each batch then pads to a similar
    width (on short-sequence data a random batch almost always holds one 50-item window, so most
    of its positions are padding), while every window is still seen once per epoch.
    """
    perm = torch.randperm(n_targets.numel(), generator=gen)
    pooled = lengths is not None and pool > 1
    if pooled and lengths is not None:
        pool_id = torch.div(torch.cumsum(n_targets[perm], 0) - 1, pool * batch_size, rounding_mode="floor")
        # stable sort by (pool, length): windows of one pool ordered by length, pools kept in order
        order = torch.argsort(pool_id * (int(lengths.max()) + 1) + lengths[perm], stable=True)
        perm = perm[order]
    csum = torch.cumsum(n_targets[perm], 0)
    bid = torch.div(csum - 1, batch_size, rounding_mode="floor")  # batch of each window, nondecreasing
    cuts = torch.nonzero(bid[1:] != bid[:-1]).flatten() + 1
    batches = list(torch.tensor_split(perm, cuts.tolist()))
    if pooled:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
    return batches


def rank_share(idx: torch.Tensor, n_targets: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This rank's windows of a global batch, and the loss weight that makes DDP's gradient average the
    whole batch's mean loss: world x (its targets / the batch's targets); the weights sum to the world size.

    Striding keeps each share as length-sorted as the pooled batch. A rank left without a window trains on
    one at weight 0: DDP needs every rank in every step. One process: the batch itself at weight 1."""
    world, rank = dist.world_size(), dist.rank()
    if world == 1:
        return idx, 1.0
    part = idx[rank::world]
    if part.numel() == 0:
        return idx[:1], 0.0
    return part, world * int(n_targets[part].sum()) / int(n_targets[idx].sum())


class LossModule(nn.Module):
    """A model's training loss as its forward, so DDP can wrap it (DDP syncs gradients of forward calls)."""

    def __init__(self, model: SeqRecModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, seq: torch.Tensor, targets: torch.Tensor, chunk: int) -> LossOutput:
        return self.model.calculate_loss(seq, targets, chunk)


def data_parallel(model: SeqRecModel, device: torch.device) -> nn.Module:
    """The loss of `model` as DDP (under torchrun) or as is: both are called (seq, targets, chunk) -> LossOutput.

    Ranks start from rank 0's weights; buffers (the content tables) are equal on every rank and never synced."""
    if not dist.active():
        return LossModule(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(LossModule(model), device_ids=ids, forward_sync_buffers=False)


def padded_width(longest: int, max_len: int, bucket: int = 8) -> int:
    """Pad a batch to its longest sequence rounded up to a multiple of `bucket`: short batches stay
    short, and few distinct shapes keep the CPU allocator from fragmenting."""
    return min(max_len, -(-longest // bucket) * bucket)


class Trainer:
    """Fits a SeqRecModel on a Split; `progress` receives typed events, `cancel` stops between batches,
    `store` saves each fit's state after every epoch (and, when resuming, continues from it)."""

    def __init__(
        self,
        cfg: TrainConfig,
        device: torch.device,
        progress: ProgressHook | None = None,
        cancel: threading.Event | None = None,
        show_bar: bool = True,
        store: StateStore | None = None,
    ) -> None:
        self.cfg, self.device, self.progress, self.show_bar, self.store = cfg, device, progress, show_bar, store
        # Ctrl-C sets this too, so callers running several fits stop after the current one.
        self.cancel = cancel if cancel is not None else threading.Event()

    def _emit(self, event: ProgressEvent) -> None:
        if self.progress is not None and dist.is_main():
            self.progress(event)

    def _replay(self, state: FitState) -> None:
        """Report a restored fit's epochs again, so a listener's curves show the whole fit."""
        best, best_epoch = -math.inf, 0
        for h in state.result.history:
            if h.valid[self.cfg.stop_metric] > best:
                best, best_epoch = h.valid[self.cfg.stop_metric], h.epoch
            self._emit(
                EpochEvent(state.result.stage, h.epoch, self.cfg.max_epochs, h.loss, h.valid, best_epoch, h.seconds)
            )

    def fit(self, model: SeqRecModel, split: Split, stage: str) -> FitResult:
        """Train until early stopping (`stop_metric` on valid, `patience` epochs) or `max_epochs`; keep the best."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        model.to(self.device)
        loss_fn: Callable[..., LossOutput] = data_parallel(model, self.device)
        if cfg.compile:  # dynamic: batch widths vary (bucketed to multiples of 8)
            loss_fn = torch.compile(loss_fn, dynamic=True)
        if cfg.amp not in (None, "bf16"):
            raise ValueError(f"amp {cfg.amp!r}: only 'bf16' (or none)")
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        n_targets = (split.train_targets > 0).sum(dim=1)
        if cfg.stop_metric not in STOP_METRICS:
            raise ValueError(f"stop_metric {cfg.stop_metric!r}: choose one of {', '.join(STOP_METRICS)}")
        # A saved state restores the model, Adam, the batch generator and the global RNGs as they were
        # after its epoch, so the epochs that follow are the ones an uninterrupted fit would have run.
        state = self.store.load(stage, model, opt, gen) if self.store is not None else None
        state = state or FitState(FitResult(stage, 0, {}))
        result = state.result
        self._replay(state)
        t_start = time.time() - result.seconds  # a continued fit counts its earlier epochs' time too
        log.info(
            "%s: %s; %d train targets in %d windows",
            stage,
            model.trainable_summary(),
            split.n_train_targets,
            len(n_targets),
        )
        last = state.epoch if state.finished else cfg.max_epochs
        try:
            for epoch in range(state.epoch + 1, last + 1):
                t0 = time.time()
                model.train()
                batches = target_batches(n_targets, cfg.batch_size, gen, split.train_lengths, cfg.length_pool)
                sums: dict[str, float] = {}
                shown_bar = self.show_bar and dist.is_main()
                bar = tqdm(batches, desc=f"{stage} epoch {epoch}", unit="batch", leave=False, disable=not shown_bar)
                for step, batch in enumerate(bar, 1):
                    if self.cancel.is_set():
                        raise KeyboardInterrupt
                    idx, weight = rank_share(batch, n_targets)
                    width = padded_width(int(split.train_lengths[idx].max()), split.max_len)
                    seq = split.train_inputs[idx, :width].to(self.device)
                    tgt = split.train_targets[idx, :width].to(self.device)
                    with torch.autocast(self.device.type, torch.bfloat16, enabled=cfg.amp == "bf16"):
                        out = loss_fn(seq, tgt, cfg.logits_chunk)
                    opt.zero_grad(set_to_none=True)
                    (out.total * weight if weight != 1.0 else out.total).backward()
                    opt.step()
                    for k, v in out.parts.items():  # this rank's share of the batch's mean
                        sums[k] = sums.get(k, 0.0) + v * weight / dist.world_size()
                    bar.set_postfix(loss=f"{float(out.total.detach()):.4f}")
                    if step % 10 == 0 or step == len(batches):
                        release_memory()  # varying batch shapes fragment the heap: RSS would grow every epoch
                        self._emit(StepEvent(stage, epoch, step, len(batches), float(out.total.detach())))
                total = dist.all_reduce_sum(torch.tensor(list(sums.values()), dtype=torch.float64))
                loss = {k: float(v) / len(batches) for k, v in zip(sums, total, strict=True)}
                if not all(math.isfinite(v) for v in loss.values()):
                    if state.best is None:
                        raise ValueError(
                            f"{stage}: the training loss is not finite at epoch {epoch} ({loss}); "
                            "no epoch to keep. Try a lower --lr."
                        )
                    result.stopped = "diverged"
                    log.error(
                        "%s epoch %d: the training loss is not finite (%s); stopping and keeping the best "
                        "epoch so far (%d). Try a lower --lr.",
                        stage,
                        epoch,
                        loss,
                        result.best_epoch,
                    )
                    break
                secs = time.time() - t0
                valid = evaluate_model(model, split.valid, cfg.eval_batch_size, cfg.eval_memory_mb)
                release_memory()
                entry = EpochLog(epoch, loss, valid, secs, split.n_train_targets / secs, time.time() - t0 - secs)
                result.history.append(entry)
                improved = valid[cfg.stop_metric] > state.best_score
                if improved:
                    state.best_score, state.bad_epochs = valid[cfg.stop_metric], 0
                    state.best = copy.deepcopy(model.state_dict())
                    result.best_epoch, result.best_valid = epoch, valid
                else:
                    state.bad_epochs += 1
                if state.bad_epochs >= cfg.patience:
                    result.stopped = "early_stop"
                state.finished = result.stopped == "early_stop" or epoch == cfg.max_epochs
                shown = dict.fromkeys(("hr@10", "ndcg@10", cfg.stop_metric))  # the starred metric is always printed
                log.info(
                    "%s epoch %d: loss %s | valid %s%s | %.1fs (%.0f targets/s)",
                    stage,
                    epoch,
                    " ".join(f"{k}={v:.4f}" for k, v in loss.items()),
                    " ".join(f"{k} {valid[k]:.4f}" for k in shown),
                    " *" if improved else "",
                    secs,
                    entry.samples_per_s,
                )
                if (
                    self.store is not None and dist.is_main()
                ):  # before the event: a listener that stops the process finds it saved
                    result.seconds = time.time() - t_start
                    self.store.save(stage, state, model, opt, gen)
                self._emit(EpochEvent(stage, epoch, cfg.max_epochs, loss, valid, result.best_epoch, secs))
                if result.stopped == "early_stop":
                    break
        except KeyboardInterrupt:
            result.stopped = "cancelled"
            self.cancel.set()
            log.warning("%s: cancelled; keeping the best epoch so far (%d)", stage, result.best_epoch)
        if state.best is not None:
            model.load_state_dict(state.best)
        model.eval()
        result.seconds = time.time() - t_start
        self._emit(FitDone(stage, result.stopped, result.best_epoch, result.best_valid, result.seconds))
        return result


def set_threads(n: int | None) -> None:
    """Use n intra-op threads (None: leave torch's default)."""
    if n:
        torch.set_num_threads(n)


__all__ = [
    "EpochLog",
    "FitResult",
    "FitState",
    "LossModule",
    "Trainer",
    "data_parallel",
    "rank_share",
    "set_threads",
    "target_batches",
]
