"""SICSRec Studio: multimodal sequential recommendation with ID-content alignment (arXiv 2510.10556)."""

__version__ = "0.2.0"  # the one source of truth: pyproject reads it, `sicsrec --version` and the app show it
