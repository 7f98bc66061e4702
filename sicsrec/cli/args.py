"""Argument groups shared by the subcommands, and the one translation of parsed arguments into configs."""

from __future__ import annotations

import argparse

from sicsrec.config import (
    FUSION_INITS,
    REFERENCE_SWITCHES,
    STOP_METRICS,
    DataConfig,
    FeatureConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    reference_decisions,
)
from sicsrec.data.schema import TEXT_FIELDS
from sicsrec.stage_a.align import AlignConfig
from sicsrec.stage_a.llm import BACKENDS, BackendOptions, PairBackend, get_backend
from sicsrec.stage_a.pairs import MiningSettings


def data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default="demo", help="dataset folder, or 'demo' (embedded MovieLens) [demo]")
    g.add_argument("--format", default="auto", choices=["auto", "csv", "recbole", "ninerec", "movielens"])
    g.add_argument("--images", default=None, help="folder of <item_id>.jpg covers/posters (turns the image branch on)")
    g.add_argument("--min-user-interactions", type=int, default=5)
    g.add_argument("--min-item-interactions", type=int, default=0)
    g.add_argument("--max-len", type=int, default=50, help="history length L [50]")
    g.add_argument("--window-stride", type=int, default=None, help="window advance for sequences longer than L [L/2]")
    g.add_argument(
        "--train-rows",
        default="windows",
        choices=["windows", "prefixes"],
        help="one causal pass per window [windows], or RecBole's one row per target (slower; "
        "more progress per epoch on long sequences)",
    )
    f = p.add_argument_group("content features")
    f.add_argument(
        "--text-encoder",
        default="minilm",
        help="minilm [default] | use (multilingual Universal Sentence Encoder: reads Chinese; frozen, "
        "stage A then aligns MiniLM) | clip:<local weights file> (open_clip ViT-B-32 text tower)",
    )
    f.add_argument(
        "--image-encoder",
        default="efficientnet-lite0",
        help="efficientnet-lite0 [default] | clip:<local weights file> (open_clip ViT-B-32 image tower)",
    )
    f.add_argument("--no-images", action="store_true", help="ignore images even when the dataset has them")
    f.add_argument(
        "--features", default="raw", choices=["raw", "aligned"], help="raw encoder features or stage-A aligned ones"
    )
    f.add_argument(
        "--text-field",
        default=FeatureConfig().text_field,
        choices=list(TEXT_FIELDS),
        help="item text to encode: both (the full text; NineRec: English + Chinese titles) [both], "
        "or one language alone where the dataset has it (en, zh)",
    )
    f.add_argument(
        "--image-norm",
        default="center_l2",
        choices=["center_l2", "none"],
        help="image feature rows: centred + unit norm like the text rows [center_l2], or raw",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    eval_memory_arg(p)
    p.add_argument("-v", "--verbose", action="store_true")


def positive_mb(text: str) -> float:
    """A memory budget in MB: a number above zero."""
    try:
        mb = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MB: {text!r}") from None
    if not mb > 0 or mb == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of MB above 0, got {text!r}")
    return mb


def eval_memory_arg(p: argparse.ArgumentParser) -> None:
    """--eval-memory-mb: the evaluation's memory budget (training's validation, the test, `evaluate`)."""
    p.add_argument(
        "--eval-memory-mb",
        type=positive_mb,
        default=TrainConfig.eval_memory_mb,
        help="rank a batch of users in item chunks when its score matrices exceed this many MB (same metrics, "
        f"bounded memory) [{TrainConfig.eval_memory_mb:g}]",
    )


def train_args(p: argparse.ArgumentParser) -> None:
    d, t = ModelConfig(), TrainConfig()
    g = p.add_argument_group("model and training (defaults = the spec)")
    g.add_argument("--hidden", type=int, default=d.hidden)
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--heads", type=int, default=d.heads)
    g.add_argument("--dropout", type=float, default=d.dropout)
    g.add_argument("--lora-rank", type=int, default=d.lora_rank)
    g.add_argument("--lr", type=float, default=t.lr)
    g.add_argument("--batch-size", type=int, default=t.batch_size, help="prediction targets per batch")
    g.add_argument(
        "--length-pool",
        type=int,
        default=t.length_pool,
        help=f"sort windows by length within pools of this many batches (fewer padded positions; "
        f"0 = random batches) [{t.length_pool}]",
    )
    g.add_argument("--max-epochs", type=int, default=t.max_epochs)
    g.add_argument("--amp", default=None, choices=["bf16"], help="bf16 autocast of training (GPU; off: fp32)")
    g.add_argument("--compile", action="store_true", help="torch.compile the training loss (GPU; first epoch slower)")
    g.add_argument("--patience", type=int, default=t.patience)
    g.add_argument(
        "--stop-metric",
        default=t.stop_metric,
        choices=list(STOP_METRICS),
        help=f"validation metric for early stopping and the kept epoch [{t.stop_metric}]",
    )
    g.add_argument("--alpha", type=float, default=d.alpha, help="weight of the content-aware contrastive loss")
    g.add_argument("--reg-lambda", type=float, default=d.reg_lambda)
    g.add_argument("--seed", type=int, default=t.seed)
    g.add_argument(
        "--continue",
        dest="continue_run",
        action="store_true",
        help="continue a killed or cancelled run in --out (same settings) from the training state saved "
        "after its last epoch, reusing what it finished; ends with the uninterrupted run's metrics",
    )
    a = p.add_argument_group("ablations and reference behaviour")
    a.add_argument("--no-content-encoder", action="store_true")
    a.add_argument("--no-mix-decoder", action="store_true")
    a.add_argument("--no-cl", action="store_true", help="drop L_CL")
    a.add_argument(
        "--content-ce-only",
        action="store_true",
        help="train the content-only baseline with CE alone (default: + alpha·L_CL + the L2 term, "
        "as the reference's Content_SeqEncoder)",
    )
    a.add_argument("--one-step", action="store_true", help="train SICSRec from scratch (no frozen step-1 encoder)")
    a.add_argument(
        "--unfreeze-step1",
        action="store_true",
        help="step 2 starts from step 1 but fine-tunes its ID Transformer too (diagnostic)",
    )
    a.add_argument(
        "--content-items",
        action="store_true",
        help="beyond the paper: SICSRec scores items by normalize(normalize(E_i) + c_i), ID and content "
        "together, instead of the ID embedding alone",
    )
    a.add_argument(
        "--content-items-gate",
        type=float,
        default=d.content_items_gate,
        help="with --content-items: an item's ID part weighs n/(n + K), n its training count (0: always 1) [0]",
    )
    a.add_argument(
        "--fusion-init",
        default=d.fusion_init,
        choices=list(FUSION_INITS),
        help="fusion layer at the start of step 2: random N(0, 0.02), or identity on the ID part "
        "(identity_matched: scaled to a random block's norm) and zero on the content parts "
        "(step 2 starts from step 1's user vector)",
    )
    a.add_argument(
        "--reference",
        default="",
        help="comma list of spec decisions to run as the authors' code did: "
        "5,6,7,8 (stage B); 1,2,3 (stage A: mine-pairs, align, pipeline)",
    )


def run_config(args: argparse.Namespace, model: str = "sicsrec", stage_a: bool = False) -> RunConfig:
    """Build the RunConfig from parsed arguments (unset training flags keep the spec's defaults).

    `stage_a`: the command also runs stage A, so its --reference decisions (1-3) are allowed here."""
    data = DataConfig(
        args.data,
        args.format,
        args.images,
        args.min_user_interactions,
        args.min_item_interactions,
        args.max_len,
        args.window_stride,
        args.train_rows,
    )
    feats = FeatureConfig(
        args.text_encoder,
        None if args.no_images else args.image_encoder,
        False if args.no_images else None,
        args.features,
        args.image_norm,
        args.text_field,
    )
    cfg = RunConfig(
        model,
        data,
        feats,
        ModelConfig(max_len=args.max_len),
        TrainConfig(device=args.device, threads=args.threads, eval_memory_mb=args.eval_memory_mb),
    )
    if hasattr(args, "hidden"):
        m, t = cfg.model_cfg, cfg.train
        m.hidden, m.ffn, m.layers, m.heads, m.dropout, m.attn_dropout = (
            args.hidden,
            args.hidden,
            args.layers,
            args.heads,
            args.dropout,
            args.dropout,
        )
        m.lora_rank, m.fusion_init, m.content_items = args.lora_rank, args.fusion_init, args.content_items
        m.content_items_gate = args.content_items_gate
        m.alpha, m.reg_lambda, m.use_cl_loss = args.alpha, args.reg_lambda, not args.no_cl
        m.content_aux_losses = not args.content_ce_only
        m.use_content_encoder, m.use_mix_decoder = not args.no_content_encoder, not args.no_mix_decoder
        t.lr, t.batch_size, t.max_epochs, t.patience = args.lr, args.batch_size, args.max_epochs, args.patience
        t.length_pool, t.stop_metric = args.length_pool, args.stop_metric
        t.amp, t.compile = args.amp, args.compile
        t.seed, t.two_step, t.freeze_step1 = args.seed, not args.one_step, not args.unfreeze_step1
        for num in reference_decisions(args.reference):
            section, name = REFERENCE_SWITCHES[num]
            if hasattr(cfg, section):
                setattr(getattr(cfg, section), name, False)
            elif not stage_a:
                raise SystemExit(f"--reference {num}: a stage-A decision; use it with mine-pairs, align or pipeline")
    return cfg


def mining_args(p: argparse.ArgumentParser) -> None:
    """Options of A1 (pair mining)."""
    d = BackendOptions()
    g = p.add_argument_group("pair mining (stage A1)")
    g.add_argument(
        "--backend",
        default="smollm2",
        choices=list(BACKENDS),
        help="smollm2 (offline LLM, default) | openai (any compatible server) | hf (local model folder) "
        "| embedding (no LLM: a labelled FALLBACK)",
    )
    g.add_argument("--llm-model", default=None, help="openai: model name on the server; hf: local model folder")
    g.add_argument("--base-url", default=d.base_url, help=f"openai: server base URL [{d.base_url}]")
    g.add_argument("--api-key-env", default=d.api_key_env, help="openai: env var holding the API key")
    g.add_argument("--concurrency", type=int, default=d.concurrency, help="openai: requests in flight")
    g.add_argument("--request-timeout", type=float, default=d.timeout, help="openai: seconds per request")
    g.add_argument("--retries", type=int, default=d.retries, help="openai: retries with exponential backoff")
    g.add_argument(
        "--margin", type=float, default=d.margin, help="smollm2/hf: nats the best candidate must beat -1 by [0]"
    )
    g.add_argument("--length-norm", action="store_true", help="smollm2/hf: mean per-token log-likelihood")
    g.add_argument(
        "--similarity-threshold",
        type=float,
        default=d.similarity_threshold,
        help="embedding: minimum cosine similarity",
    )
    g.add_argument("--max-candidates", type=int, default=10, help="most recent training-part items shown [10]")
    g.add_argument("--max-users", type=int, default=None, help="ask only this many (seeded) users: a quick run")
    g.add_argument("--sample-seed", type=int, default=2025, help="seed of the --max-users sample")
    g.add_argument("--replies", default=None, help="reply cache (JSONL) [<pairs dir>/replies.jsonl]")


def align_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """Options of A2 (encoder alignment); `prefix` keeps them apart from stage B's --lr/--batch-size."""
    d = AlignConfig()
    g = p.add_argument_group("encoder alignment (stage A2; defaults = the spec)")
    g.add_argument(f"--{prefix}optimizer", dest="align_optimizer", default=d.optimizer, choices=["sgd", "adamw"])
    g.add_argument(
        f"--{prefix}lr",
        dest="align_lr",
        type=float,
        default=d.lr,
        metavar="LR",
        help=f"[{d.lr:g}; SGD at 1e-5 barely moves the encoders: try --{prefix}optimizer adamw --{prefix}lr 1e-4]",
    )
    g.add_argument(f"--{prefix}batch-size", dest="align_batch_size", type=int, default=d.batch_size, metavar="N")
    g.add_argument(f"--{prefix}epochs", dest="align_epochs", type=int, default=d.epochs, metavar="N")
    g.add_argument(f"--{prefix}temperature", dest="align_temperature", type=float, default=d.temperature, metavar="TAU")
    g.add_argument(
        f"--{prefix}weight-decay", dest="align_weight_decay", type=float, default=d.weight_decay, metavar="WD"
    )
    g.add_argument("--no-t2t", action="store_true", help="ablation: drop the text-text loss")
    g.add_argument("--no-i2i", action="store_true", help="ablation: drop the image-image loss")
    g.add_argument("--no-t2i", action="store_true", help="ablation: drop the text-image loss")
    g.add_argument("--workers", type=int, default=None, help="image-decoding processes [min(2, CPUs)]")


def backend_from(args: argparse.Namespace) -> PairBackend:
    """The pair-mining backend the arguments name (models load lazily, on the first uncached query)."""
    return get_backend(
        args.backend,
        BackendOptions(
            model=args.llm_model,
            device=args.device,
            margin=args.margin,
            length_norm=args.length_norm,
            similarity_threshold=args.similarity_threshold,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            timeout=args.request_timeout,
            retries=args.retries,
            concurrency=args.concurrency,
        ),
    )


def mining_settings(args: argparse.Namespace) -> MiningSettings:
    """A1's query settings from the arguments (decisions 1 and 2 as --reference asks)."""
    ref = reference_decisions(args.reference, ("mining",))
    return MiningSettings(
        max_candidates=args.max_candidates,
        max_users=args.max_users,
        seed=args.sample_seed,
        training_part_only=1 not in ref,
        candidate_titles_aligned=2 not in ref,
    )


def align_config(args: argparse.Namespace, use_images: bool | None) -> AlignConfig:
    """A2's settings from the arguments (decision 3 as --reference asks)."""
    return AlignConfig(
        t2t=not args.no_t2t,
        i2i=not args.no_i2i,
        t2i=not args.no_t2i,
        temperature=args.align_temperature,
        optimizer=args.align_optimizer,
        lr=args.align_lr,
        weight_decay=args.align_weight_decay,
        batch_size=args.align_batch_size,
        epochs=args.align_epochs,
        seed=args.seed,
        train_heads=3 not in reference_decisions(args.reference, ("align",)),
        use_images=use_images,
        text_field=args.text_field,
        device=args.device,
        num_workers=args.workers,
    )
