"""Data layer: load csv / RecBole / NineRec / MovieLens folders into one validated schema."""

from sicsrec.data.demo import DEMO_PATH, load_demo
from sicsrec.data.loaders import FORMATS, load_dataset
from sicsrec.data.schema import DataError, Dataset, Problem, ValidationReport

__all__ = ["DEMO_PATH", "FORMATS", "DataError", "Dataset", "Problem", "ValidationReport", "load_dataset", "load_demo"]
