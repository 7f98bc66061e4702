"""SICSRec Studio: multimodal sequential recommendation with ID-content alignment (arXiv 2510.10556)."""

__version__ = "0.1.0"
