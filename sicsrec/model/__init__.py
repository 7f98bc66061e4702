"""Stage B models behind one contract (`SeqRecModel`); `MODELS` is the registry."""

from sicsrec.model.base import ItemTables, LossOutput, SeqOutput, SeqRecModel
from sicsrec.model.content_seq import ContentSeq
from sicsrec.model.id_control import IDControl
from sicsrec.model.sasrec import SASRec
from sicsrec.model.sicsrec import SICSRec

MODELS: dict[str, type[SeqRecModel]] = {m.name: m for m in (SASRec, ContentSeq, IDControl, SICSRec)}

__all__ = [
    "MODELS",
    "ContentSeq",
    "IDControl",
    "ItemTables",
    "LossOutput",
    "SASRec",
    "SICSRec",
    "SeqOutput",
    "SeqRecModel",
]
