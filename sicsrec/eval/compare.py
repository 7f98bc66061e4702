"""SICSRec against its baselines on one split, same features and evaluation code: the results table."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sicsrec.checkpoint import CheckpointError, item_table, load_checkpoint, save_checkpoint
from sicsrec.config import RunConfig, save_json
from sicsrec.eval.evaluate import evaluate_model, evaluate_popularity
from sicsrec.model import MODELS
from sicsrec.pipeline import Prepared, prepare
from sicsrec.train.trainer import EpochLog, FitResult, ProgressHook, Trainer, set_threads
from sicsrec.train.two_step import Cancelled, Trained, train_model
from sicsrec.utils import resolve_device, seed_everything

log = logging.getLogger("sicsrec")

MODEL_ORDER = ("pop", "sasrec", "content", "sicsrec")


def markdown_table(results: dict[str, Any]) -> str:
    """Test (and valid) HR/NDCG@5/10 of every model, epochs and seconds, as a markdown table."""
    head = "| model | test HR@5 | test HR@10 | test NDCG@5 | test NDCG@10 | valid HR@10 | epochs | train s |"
    rows = [head, "|" + "---|" * 8]
    for name in MODEL_ORDER:
        m = results["models"].get(name)
        if m is None:
            continue
        t = m["test"]
        rows.append(f"| {name} | {t['hr@5']:.4f} | {t['hr@10']:.4f} | {t['ndcg@5']:.4f} | {t['ndcg@10']:.4f} | "
                    f"{m['valid']['hr@10']:.4f} | {m['epochs']} | {m['train_seconds']:.0f} |")
    return "\n".join(rows)


def fits_record(trained: Trained) -> list[dict[str, Any]]:
    """Each fit's stage, kept epoch, stop reason, seconds and per-epoch log, as saved in a checkpoint."""
    return [{"stage": f.stage, "best_epoch": f.best_epoch, "stopped": f.stopped, "seconds": f.seconds,
             "history": [asdict(h) for h in f.history]} for f in trained.fits]


def _resumable(path: Path, run: RunConfig) -> Trained | None:
    """A finished checkpoint under `path` trained with the same settings, loaded, or None."""
    try:
        model, config, _ = load_checkpoint(path)
    except CheckpointError:
        return None
    # Through RunConfig, so settings added since the checkpoint was written compare at their defaults.
    saved, now = RunConfig.from_dict(config.get("run", {})).to_dict(), run.to_dict()
    for d in (saved.get("model_cfg", {}), now["model_cfg"]):
        d.pop("id_adapters", None)  # set by step 2 itself
    if any(saved.get(k) != now[k] for k in ("model", "data", "features", "model_cfg", "train")):
        return None
    fits = [FitResult(f["stage"], f["best_epoch"], {}, [EpochLog(**h) for h in f["history"]], f["seconds"], f["stopped"])
            for f in config.get("fits", [])]
    if not fits or fits[-1].stopped == "cancelled":
        return None
    log.info("%s: reusing the finished checkpoint %s", run.model, path)
    return Trained(model, fits)


def run_compare(cfg: RunConfig, out: str | Path, models: tuple[str, ...] = ("sasrec", "content", "sicsrec"),
                progress: ProgressHook | None = None, cancel: threading.Event | None = None,
                show_bar: bool = True, prepared: Prepared | None = None, resume: bool = False) -> dict[str, Any]:
    """Train `models` on one split (SICSRec's step 1 is the SASRec run), evaluate all with full ranking,
    write checkpoints under out/checkpoints/<model>/ and out/results.json; return the results dict.
    With `resume`, a model whose finished checkpoint in `out` has identical settings is reused."""
    models = tuple(m for m in models if m != "pop")  # popularity is always evaluated
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))}: choose from {', '.join(MODELS)} "
                         "(popularity is always evaluated)")
    out = Path(out)
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    needs_content = any(m in ("content", "sicsrec") for m in models)
    def feature_progress(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress({"kind": "features", "stage": stage, "done": done, "total": total})

    prep = prepared or prepare(cfg.data, cfg.features if needs_content else None, str(device),
                               progress=feature_progress, cancel=cancel, show_bar=show_bar)
    split = prep.split
    items = item_table(split, prep.dataset.items)
    results: dict[str, Any] = {
        "dataset": prep.dataset.name,
        "split": split.counts(),
        "device": str(device),
        "features": prep.features_meta,
        "config": cfg.to_dict(),
        "models": {"pop": {**evaluate_popularity(split), "epochs": 0, "train_seconds": 0.0}},
    }
    trainer = Trainer(cfg.train, device, progress, cancel, show_bar)
    step1: Trained | None = None
    for name in models:
        if trainer.cancel.is_set():
            break
        reused = _resumable(out / "checkpoints" / name, RunConfig(name, cfg.data, cfg.features, cfg.model_cfg, cfg.train)) if resume else None
        try:
            trained = reused or train_model(name, split, prep.tables, cfg.model_cfg, cfg.train, trainer,
                                            step1=step1 if name == "sicsrec" else None)
        except Cancelled as e:
            log.warning("%s: %s", name, e)
            break
        if trained.fits[-1].best_epoch == 0:  # cancelled before one full epoch: nothing worth keeping
            log.warning("%s: cancelled before its first epoch ended; no checkpoint written", name)
            break
        if name == "sasrec":
            step1 = trained
        metrics = {s: evaluate_model(trained.model, getattr(split, s), cfg.train.eval_batch_size) for s in ("valid", "test")}
        results["models"][name] = {**metrics, "epochs": trained.epochs, "train_seconds": trained.seconds,
                                   "stopped": trained.fits[-1].stopped}
        run = RunConfig(name, cfg.data, cfg.features, trained.model.cfg, cfg.train)
        if reused is None:
            save_checkpoint(out / "checkpoints" / name, trained.model, items,
                            {"dataset": prep.dataset.name, "run": run.to_dict(), "metrics": metrics,
                             "features": prep.features_meta, "fits": fits_record(trained)})
        save_json(results, out / "results.json")  # after every model, so a cancelled run keeps its part
        log.info("%s test: %s", name, " ".join(f"{k}={v:.4f}" for k, v in metrics["test"].items()))
    results["cancelled"] = trainer.cancel.is_set()
    save_json(results, out / "results.json")
    return results
