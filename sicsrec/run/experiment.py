"""One experiment end to end: (stage A) -> prepare -> train -> evaluate -> checkpoint -> results.json.

`run_experiment` is the one place this sequence lives; the CLI (`compare`, `train`, `pipeline`),
the app's Train tab and `bench/` call it. With `resume`, every stage whose output is current is
skipped: mined pairs with the same settings and data, aligned features already cached, a
results.json holding every requested model for the same config, and each model whose finished
checkpoint has identical settings. Training saves each fit's state after every epoch under
out/train_state (removed when the run finishes); `continue_run` also continues an interrupted fit
from it, ending as the uninterrupted run would. `cancel` stops any stage cleanly (pair mining keeps
its reply cache, training keeps the best epoch so far); `progress` receives typed events (`sicsrec.events`).

Under `torchrun --nproc_per_node N -m sicsrec compare|train|pipeline ...` every rank runs this sequence:
rank 0 mines pairs first (the others then read them), encoder alignment and training are data-parallel,
feature extraction is sharded over the ranks, and only rank 0 writes the pairs, the aligned features,
checkpoints, results.json, training states and progress.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sicsrec import dist
from sicsrec.checkpoint import CheckpointError, item_table, load_checkpoint, save_checkpoint
from sicsrec.config import RunConfig
from sicsrec.data.schema import Dataset
from sicsrec.eval.evaluate import evaluate_model, evaluate_popularity
from sicsrec.eval.metrics import TIE_RULE
from sicsrec.eval.results import ModelResult, Results
from sicsrec.events import (
    PHASE_PREPARE,
    PHASE_TRAIN,
    STAGE_ALIGN,
    STAGE_MINING,
    AlignDone,
    MiningDone,
    PhaseEvent,
    ProgressHook,
    StageAProgress,
)
from sicsrec.features.encoders import trainable_text_encoder
from sicsrec.model import MODELS
from sicsrec.run.prepare import Prepared, load_data, prepare
from sicsrec.stage_a.align import AlignConfig, AlignResult, align
from sicsrec.stage_a.llm import BackendOptions, PairBackend, get_backend
from sicsrec.stage_a.pairs import MiningResult, MiningSettings, mine_pairs, pairs_current
from sicsrec.train.state import StateStore
from sicsrec.train.trainer import EpochLog, FitResult, Trainer, set_threads
from sicsrec.train.two_step import Cancelled, Trained, train_model
from sicsrec.utils import resolve_device, seed_everything

log = logging.getLogger("sicsrec")

ALL_MODELS = ("sasrec", "content", "sicsrec")


class StageCancelled(KeyboardInterrupt):
    """Raised from a stage-A progress callback when the cancel switch is set (the stages' Ctrl-C contract)."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


@dataclass
class StageAPlan:
    """What runs before training: pair mining (A1) into out/pairs, encoder alignment (A2) into out/align.

    With `align`, training reads the aligned features (FeatureConfig.source = "aligned")."""

    mine: bool = False
    align: bool = False
    backend: str | PairBackend = "smollm2"
    options: BackendOptions = field(default_factory=BackendOptions)
    mining: MiningSettings = field(default_factory=MiningSettings)
    align_cfg: AlignConfig = field(default_factory=AlignConfig)
    replies: str | None = None  # the reply cache [out/pairs/replies.jsonl]

    @property
    def active(self) -> bool:
        return self.mine or self.align


@dataclass
class ExperimentResult:
    """What a run produced: results.json's content, stage A's outputs, and whether each stage was skipped."""

    results: Results
    mining: MiningResult | None = None
    aligned: AlignResult | None = None
    skipped: list[str] = field(default_factory=list)  # stages found current and not redone

    @property
    def cancelled(self) -> bool:
        return self.results.cancelled


def fits_record(trained: Trained) -> list[dict[str, Any]]:
    """Each fit's stage, kept epoch, stop reason, seconds and per-epoch log, as saved in a checkpoint."""
    return [
        {
            "stage": f.stage,
            "best_epoch": f.best_epoch,
            "stopped": f.stopped,
            "seconds": f.seconds,
            "history": [asdict(h) for h in f.history],
        }
        for f in trained.fits
    ]


def read_fits(config: dict[str, Any]) -> list[FitResult]:
    """The fits a checkpoint's config recorded (`fits_record`'s inverse, without the best metrics)."""
    return [
        FitResult(f["stage"], f["best_epoch"], {}, [EpochLog(**h) for h in f["history"]], f["seconds"], f["stopped"])
        for f in config.get("fits", [])
    ]


# TrainConfig fields that change how fast or in how much memory a run goes, never its weights or metrics.
EXECUTION_ONLY = ("threads", "eval_memory_mb", "eval_batch_size")


def run_identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run's training in its settings (a RunConfig's dict): read through RunConfig, so settings
    added since they were written compare at their defaults; without how it ran (EXECUTION_ONLY) and step 2's
    own id_adapters. A finished checkpoint is reused, and a saved training state continued, when these match."""
    d = RunConfig.from_dict(settings).to_dict()
    d["model_cfg"].pop("id_adapters", None)  # set by step 2 itself
    for key in EXECUTION_ONLY:  # how it ran, not what it learned
        d["train"].pop(key, None)
    return {k: d[k] for k in ("model", "data", "features", "model_cfg", "train")}


def resumable(path: Path, run: RunConfig) -> Trained | None:
    """A finished checkpoint under `path` trained with the same settings, loaded, or None."""
    try:
        model, config, _ = load_checkpoint(path)
    except CheckpointError:
        return None
    if run_identity(config.get("run", {})) != run_identity(run.to_dict()):
        return None
    fits = read_fits(config)
    if not fits or fits[-1].stopped == "cancelled":
        return None
    log.info("%s: reusing the finished checkpoint %s", run.model, path)
    return Trained(model, fits)


def _check_models(models: tuple[str, ...]) -> tuple[str, ...]:
    """The trainable models asked for ('pop' dropped: popularity is always evaluated); ValueError on unknown names."""
    models = tuple(dict.fromkeys(m for m in models if m != "pop"))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(
            f"unknown model(s) {', '.join(map(repr, unknown))}: choose from {', '.join(MODELS)} "
            "(popularity is always evaluated)"
        )
    return tuple(sorted(models, key=lambda m: m != "sasrec"))  # SASRec first: it is step 1 of the others


class _Run:
    """The state one experiment threads through its stages (config, folder, hooks, cancel switch)."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        progress: ProgressHook | None,
        cancel: threading.Event,
        show_bar: bool,
        resume: bool,
        force: bool,
        continue_run: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.cfg, self.out, self.progress, self.cancel = cfg, out, progress, cancel
        self.show_bar, self.resume, self.force, self.continue_run = show_bar, resume, force, continue_run
        self.device = device or resolve_device(cfg.train.device)

    def emit(self, event: Any) -> None:
        if self.progress is not None:
            self.progress(event)

    def stage_callback(self, stage: str) -> Any:
        """A stage-A progress callback: reports (done, total) and stops the stage when cancel is set."""

        def callback(done: int, total: int) -> None:
            self.emit(StageAProgress(stage, done, total))
            if self.cancel.is_set():
                raise StageCancelled(stage)

        return callback

    # --- stage A ---------------------------------------------------------------------------------------

    def stage_a(self, plan: StageAPlan, dataset: Dataset, result: ExperimentResult) -> None:
        """A1 mines pairs into out/pairs (skipped when current under `resume`); A2 aligns the encoders on them."""
        pairs = self.out / "pairs"
        if plan.mine:
            # Ranks after the first find the pairs rank 0 just mined (`dist.main_first`).
            with dist.main_first():
                backend = get_backend(plan.backend, plan.options) if isinstance(plan.backend, str) else plan.backend
                if (self.resume or not dist.is_main()) and pairs_current(pairs, dataset, plan.mining, backend):
                    log.info("mine-pairs: %s is current, skipped", pairs)
                    result.skipped.append(STAGE_MINING)
                    self.emit(MiningDone(backend.name, backend.fallback, -1, {}, skipped=True))
                else:
                    self.emit(StageAProgress(STAGE_MINING, 0, 0))
                    mined = mine_pairs(
                        dataset,
                        pairs,
                        backend,
                        settings=plan.mining,
                        replies_path=plan.replies,
                        progress=self.show_bar,
                        progress_callback=self.stage_callback(STAGE_MINING),
                    )
                    result.mining = mined
                    self.emit(MiningDone(backend.name, backend.fallback, len(mined.pairs), dict(mined.counts)))
        if plan.align:
            self.emit(StageAProgress(STAGE_ALIGN, 0, 0))
            feats, cfg = self.cfg.features, plan.align_cfg
            if cfg.use_images is None:
                cfg.use_images = feats.use_images
            cfg.text_field = feats.text_field
            feats.text_encoder, note = trainable_text_encoder(feats.text_encoder)
            if note:  # a frozen-only encoder (e.g. the multilingual USE): align and then read MiniLM's features
                log.warning(note)
            aligned = align(
                dataset,
                pairs,
                self.out / "align",
                cfg,
                feats.text_encoder,
                feats.image_encoder,
                force=self.force,  # every rank aligns its share (data-parallel); rank 0 alone writes the features
                progress=self.show_bar,
                progress_callback=self.stage_callback(STAGE_ALIGN),
            )
            result.aligned = aligned
            if aligned.skipped:
                result.skipped.append(STAGE_ALIGN)
            losses = [h["loss"] for h in aligned.history] or [0.0]
            self.emit(
                AlignDone(
                    cfg.optimizer,
                    cfg.lr,
                    cfg.epochs,
                    losses[0],
                    losses[-1],
                    aligned.seconds,
                    aligned.source,
                    aligned.skipped,
                    note,
                )
            )
            feats.source = "aligned"

    # --- stage B ---------------------------------------------------------------------------------------

    def train_all(self, models: tuple[str, ...], prepared: Prepared | None, step1_path: Path | None) -> Results:
        """Prepare, then train, evaluate and checkpoint each model; results.json after every model.

        Each fit's state is saved after every epoch (a fresh run first drops states left by an earlier
        one; `continue_run` continues from them) and removed once every model finished."""
        cfg, out = self.cfg, self.out
        store = StateStore(out, cfg.to_dict(), resume=self.continue_run, identity=run_identity)
        main = dist.is_main()
        if main and not self.continue_run:
            store.clear()
        if main:
            store.record(models)
        device = self.device
        needs_content = any(MODELS[m].uses_content for m in models)
        if prepared is None:
            self.emit(PhaseEvent(PHASE_PREPARE))
        # every rank at once: feature extraction shards the items over the ranks, rank 0 writes the cache
        prep = prepared or prepare(
            cfg.data,
            cfg.features if needs_content else None,
            str(device),
            progress=self.progress,
            cancel=self.cancel,
            show_bar=self.show_bar,
        )
        self.emit(PhaseEvent(PHASE_TRAIN))
        split = prep.split
        items = item_table(split, prep.dataset.items)
        pop = evaluate_popularity(split, cfg.train.eval_memory_mb)
        results = Results(
            prep.dataset.name,
            split.counts(),
            str(device),
            prep.features_meta,
            cfg.to_dict(),
            {"pop": ModelResult(pop["valid"], pop["test"])},
            ranking=TIE_RULE,
        )
        trainer = Trainer(cfg.train, device, self.progress, self.cancel, self.show_bar, store)
        step1 = _load_step1(step1_path) if step1_path is not None else None
        for name in models:
            if trainer.cancel.is_set():
                break
            run = RunConfig(name, cfg.data, cfg.features, cfg.model_cfg, cfg.train)
            reused = resumable(out / "checkpoints" / name, run) if self.resume else None
            try:
                trained = reused or train_model(
                    name,
                    split,
                    prep.tables,
                    cfg.model_cfg,
                    cfg.train,
                    trainer,
                    step1=step1 if MODELS[name].starts_from_step1 else None,
                )
            except Cancelled as e:
                log.warning("%s: %s", name, e)
                break
            if trained.fits[-1].best_epoch == 0:  # cancelled before one full epoch: nothing worth keeping
                log.warning("%s: cancelled before its first epoch ended; no checkpoint written", name)
                break
            if name == "sasrec":
                step1 = trained
            metrics = {
                s: evaluate_model(trained.model, getattr(split, s), cfg.train.eval_batch_size, cfg.train.eval_memory_mb)
                for s in ("valid", "test")
            }
            results.models[name] = ModelResult(
                metrics["valid"], metrics["test"], trained.epochs, trained.seconds, trained.fits[-1].stopped
            )
            if reused is None and main:
                saved = RunConfig(name, cfg.data, cfg.features, trained.model.cfg, cfg.train)
                save_checkpoint(
                    out / "checkpoints" / name,
                    trained.model,
                    items,
                    {
                        "dataset": prep.dataset.name,
                        "run": saved.to_dict(),
                        "metrics": metrics,
                        "features": prep.features_meta,
                        "fits": fits_record(trained),
                    },
                )
            if main:
                results.write(out / "results.json")  # after every model, so a cancelled run keeps its part
            log.info("%s test: %s", name, " ".join(f"{k}={v:.4f}" for k, v in metrics["test"].items()))
        results.cancelled = trainer.cancel.is_set()
        if main:
            results.write(out / "results.json")
            if not results.cancelled:
                store.clear()
        return results


def _load_step1(path: Path) -> Trained:
    """A finished SASRec checkpoint to start SICSRec's step 2 from (its fits as recorded)."""
    model, config, _ = load_checkpoint(path)
    if model.name != "sasrec":
        raise CheckpointError(f"{path}: step 1 must be a SASRec checkpoint, found {model.name!r}")
    return Trained(model, read_fits(config))


def run_experiment(
    cfg: RunConfig,
    out: str | Path,
    models: tuple[str, ...] = ALL_MODELS,
    stage_a: StageAPlan | None = None,
    progress: ProgressHook | None = None,
    cancel: threading.Event | None = None,
    show_bar: bool = True,
    prepared: Prepared | None = None,
    resume: bool = False,
    force: bool = False,
    step1: str | Path | None = None,
    continue_run: bool = False,
) -> ExperimentResult:
    """Run one experiment into the folder `out` (pairs/, align/, checkpoints/<model>/, results.json).

    `resume` skips every stage whose output is current; `force` also retrains cached aligned features.
    `continue_run` implies `resume` and continues an interrupted fit from its state saved in out/train_state.
    `step1`: a finished SASRec checkpoint folder that SICSRec's step 2 starts from instead of this
    run's own SASRec (ablations share one step 1; the caller vouches it was trained on this split).

    Step 2 models (SICSRec, the ID control) start from this run's SASRec when it is asked for too. A cancelled stage A raises
    StageCancelled (what it finished stays on disk); cancelled training returns the models
    finished so far with `results.cancelled` set.
    """
    models = _check_models(models)
    out = Path(out)
    set_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    device = dist.init(resolve_device(cfg.train.device))  # joins torchrun's process group when launched by it
    resume = resume or continue_run  # continuing reuses everything the interrupted run finished
    main = dist.is_main()  # the other ranks report nothing
    run = _Run(
        cfg,
        out,
        progress if main else None,
        cancel if cancel is not None else threading.Event(),
        show_bar and main,
        resume,
        force,
        continue_run,
        device,
    )
    result = ExperimentResult(Results(""))
    if stage_a is not None and stage_a.active:  # mining on rank 0 first, alignment on every rank (`_Run.stage_a`)
        run.stage_a(stage_a, prepared.dataset if prepared else load_data(cfg.data), result)
    if not models:
        return result
    # The feature source a finished run recorded: known without loading the data unless "aligned" was
    # asked for without running stage A here (then only the per-model checkpoints are checked).
    source = result.aligned.source if result.aligned is not None else cfg.features.source
    current = Results.read(out) if resume and source != "aligned" else None
    if current is not None and current.is_current(cfg.to_dict(), models, source):
        log.info("%s is current, skipped", out / "results.json")
        result.skipped.append("train")
        result.results = current
        return result
    result.results = run.train_all(models, prepared, None if step1 is None else Path(step1))
    return result


__all__ = [
    "ALL_MODELS",
    "ExperimentResult",
    "StageAPlan",
    "StageCancelled",
    "fits_record",
    "read_fits",
    "resumable",
    "run_experiment",
]
