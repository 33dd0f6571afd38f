"""CIDEr-D with fixed document frequencies: moved to core.cider (the app's consensus reranker uses it)."""

from core.cider import SIGMA, CiderD, N, ngrams

__all__ = ["N", "SIGMA", "CiderD", "ngrams"]
