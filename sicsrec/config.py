"""Typed configs with the spec's defaults (SICSREC_SPEC.md), saved beside every checkpoint as JSON.

Each of the spec's nine "decisions" that changes numbers is a boolean switch here: True is this
project's fix, False reproduces the authors' reference code for comparison.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class DataConfig:
    """Which dataset and how it is split (leave-one-out, histories cut to `max_len`)."""

    path: str = ""
    format: str = "auto"
    images: str | None = None
    min_user_interactions: int = 5
    min_item_interactions: int = 0
    max_len: int = 50
    # Sequences longer than max_len+1 are cut into windows advancing by this many targets, so each
    # target keeps between max_len - stride and max_len items of context (1 = every target with its
    # full last-max_len context; None = max_len // 2).
    window_stride: int | None = None
    # Training rows: "windows" (one causal pass scores every target of a window) or "prefixes"
    # (RecBole's one row per target: same loss, own dropout masks per target, ~10-20x the compute).
    train_rows: str = "windows"
    # Refuse image paths in the items file that point outside the dataset folder (uploads are untrusted).
    confine_images: bool = False


@dataclass
class FeatureConfig:
    """Content features read by the content branch (stage A writes 'aligned' ones to the same cache)."""

    text_encoder: str = "minilm"
    image_encoder: str | None = "efficientnet-lite0"
    use_images: bool | None = None  # None: on when the dataset has images
    source: str = "raw"  # "raw" or "aligned"
    # Image rows as the text rows already are (MiniLM: unit norm, ~zero mean): "center_l2" subtracts
    # the mean image feature and L2-normalises each row; "none" feeds raw CNN features (all
    # non-negative, norm ~17 for EfficientNet-Lite0), which let MLP_v(V) swamp MLP_t(T).
    image_norm: str = "center_l2"
    # Which item text is encoded: "both" (the dataset's full text; NineRec: English + Chinese titles),
    # or one language alone where the dataset has it ("en" / "zh": sicsrec.data.schema.TEXT_FIELDS).
    text_field: str = "both"


@dataclass
class ModelConfig:
    """Stage B architecture (spec: d 256, 2 layers, 2 heads, FFN 256, dropout 0.5, L 50)."""

    hidden: int = 256
    layers: int = 2
    heads: int = 2
    ffn: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    max_len: int = 50
    lora_rank: int = 4
    temperature: float = 0.05
    # Decision 5: chain the mix decoder's layers (False: every layer gets the original query).
    chain_mix_decoder: bool = True
    # Decision 6: adapters after attention AND after FFN train (False: only after attention).
    lora_both_sublayers: bool = True
    # Decision 8: score normalize(E)/tau at inference as in training (False: raw E at inference).
    normalized_item_scoring: bool = True
    # Ablation switches (all True = the full SICSRec).
    use_content_encoder: bool = True
    use_mix_decoder: bool = True
    # Fusion W = [W_id | W_c | W_mix] at construction: "random" (N(0, 0.02) like every other layer),
    # "identity" (W_id = I, W_c = W_mix = 0, b = 0: step 2 starts from step 1's user vector, scored
    # by cosine, and the content side grows from zero) or "identity_matched" (the same with W_id =
    # 0.02·sqrt(d)·I, a random block's norm). The spec leaves this init open.
    fusion_init: str = "random"
    # Beyond the paper (off = the spec): score items by normalize(normalize(E_i) + c_i) instead of
    # normalize(E_i), so an item's content reaches the item side too (the content-only baseline's
    # strength on sets where content generalises better than IDs).
    content_items: bool = False
    # With content_items: an item's ID part weighs n / (n + content_items_gate), n its count among the training
    # targets, so a rarely seen item is scored mostly by its content and an unseen one by its content alone
    # (0: the ID part always weighs 1).
    content_items_gate: float = 0.0
    # Loss weights of the content models (the model computes its own loss terms).
    alpha: float = 0.2  # weight of L_CL
    reg_lambda: float = 0.01  # weight of the L2 term on the item embedding and content tables
    use_cl_loss: bool = True
    # Decision 7: drop same-target false negatives from the L_CL denominator (False: logit set to 0).
    remove_false_negatives: bool = True
    # The content-only baseline trains like the reference's Content_SeqEncoder: CE + alpha·L_CL +
    # lambda·(||T|| + ||V||) (False: CE alone, this project's baseline before 0.2).
    content_aux_losses: bool = True
    # Set by step 2: the ID Transformer carries low-rank adapters (needed to rebuild a checkpoint).
    id_adapters: bool = False


FUSION_INITS = ("random", "identity", "identity_matched")  # ModelConfig.fusion_init
LOSS_WEIGHTS = ("alpha", "reg_lambda", "use_cl_loss", "remove_false_negatives")  # in TrainConfig until 0.1
STOP_METRICS = ("hr@10", "ndcg@10", "hr@5", "ndcg@5")  # validation metrics early stopping may follow


@dataclass
class TrainConfig:
    """Optimisation for both steps (spec: Adam 1e-3, batch 1024, early stop on valid HR@10, patience 10)."""

    lr: float = 1e-3
    batch_size: int = 1024  # prediction targets per batch (RecBole's prefix samples)
    max_epochs: int = 200
    patience: int = 10
    # Validation metric for early stopping and the kept epoch (spec: hr@10). At d 64 the learning
    # curves show it rarely changes the kept epoch (docs/BENCHMARKS.md); ndcg@10 is there for users
    # who select by NDCG.
    stop_metric: str = "hr@10"
    weight_decay: float = 0.0
    seed: int = 2025
    device: str = "auto"
    eval_batch_size: int = 2048
    # A batch's (users x items) score matrices above this many MB are ranked in item chunks with a running
    # count (same metrics, bounded memory; sicsrec.eval.evaluate.EVAL_MEMORY_MB is the same default).
    eval_memory_mb: float = 512.0
    logits_chunk: int = 4096  # rows of the full-softmax computed at once (bounds memory)
    # Sort windows by length within pools of this many batches before cutting batches (0/1: fully
    # random batches, as RecBole): batches pad to similar widths. Bili_Food: 8.5 -> 3.5 positions
    # per target, SASRec's test metrics unchanged over 3 seeds (docs/BENCHMARKS.md).
    length_pool: int = 4
    # Two-step training: step 2 starts from a frozen step-1 ID encoder (False: one-step ablation).
    two_step: bool = True
    # Step 2 freezes step 1's ID Transformer (False: fine-tunes it too; a diagnostic that separates
    # one-step's from-scratch training from its trainable ID encoder).
    freeze_step1: bool = True
    threads: int | None = None
    # GPU speed switches, off by default (fp32 eager, the figures of record): bf16 autocast of the
    # training forward and loss ("bf16"), and torch.compile of the training loss. Validation stays fp32.
    amp: str | None = None
    compile: bool = False


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    model: str = "sicsrec"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model_cfg: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (the form checkpoints and results.json store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of `to_dict`; missing settings take their defaults, unknown ones are ignored.

        Configs written before the loss weights moved to ModelConfig keep them under "train": they
        are read from there when "model_cfg" lacks them."""
        train, model_cfg = d.get("train", {}), dict(d.get("model_cfg", {}))
        for key in LOSS_WEIGHTS:
            if key not in model_cfg and key in train:
                model_cfg[key] = train[key]
        return cls(
            model=d.get("model", "sicsrec"),
            data=_build(DataConfig, d.get("data", {})),
            features=_build(FeatureConfig, d.get("features", {})),
            model_cfg=_build(ModelConfig, model_cfg),
            train=_build(TrainConfig, train),
        )


# Spec decision number -> (config section, field) whose False reproduces the authors' reference code.
# "mining" (MiningSettings) and "align" (AlignConfig) are stage A's; the others are RunConfig sections.
# Not switchable: 4 (the reference fine-tuned BERT's pooler, then extracted the raw CLS state; our
# encoders have no pooler to discard) and 9 (the reference's 300-d step 1 cannot load into its 256-d step 2).
REFERENCE_SWITCHES = {
    1: ("mining", "training_part_only"),
    2: ("mining", "candidate_titles_aligned"),
    3: ("align", "train_heads"),
    5: ("model_cfg", "chain_mix_decoder"),
    6: ("model_cfg", "lora_both_sublayers"),
    7: ("model_cfg", "remove_false_negatives"),
    8: ("model_cfg", "normalized_item_scoring"),
}


def reference_decisions(text: str, sections: tuple[str, ...] | None = None) -> set[int]:
    """The decision numbers of a --reference list ("5,7"), optionally only those of `sections`."""
    nums = set()
    for num in filter(None, (s.strip() for s in text.split(","))):
        if not num.isdigit() or int(num) not in REFERENCE_SWITCHES:
            raise ValueError(f"--reference: unknown decision {num!r}; switchable: {sorted(REFERENCE_SWITCHES)}")
        nums.add(int(num))
    return {n for n in nums if sections is None or REFERENCE_SWITCHES[n][0] in sections}


def _build(cls: type[T], d: dict[str, Any]) -> T:
    """Build a dataclass from a dict, ignoring unknown keys so older configs still load."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is bound to config dataclasses
    return cls(**{k: v for k, v in d.items() if k in names})


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from a stored dict (unknown keys ignored)."""
    return _build(ModelConfig, d)


def save_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (temp file + rename), so an interrupted save never leaves half a file."""
    from sicsrec.utils import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str))
