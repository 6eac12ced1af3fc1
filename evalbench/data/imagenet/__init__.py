"""ImageNet-1k (ILSVRC-2012) from a local copy, the robustness test sets beside it, and the shipped subset and class lists."""
from .source import ImageNet

__all__ = ["ImageNet"]
