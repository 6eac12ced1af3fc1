"""VTAB-1k: the 19 tasks' definitions and their data routes (export, dSprites, torchvision sources, Hugging Face copies)."""
from .routes import Vtab, prepare, status_rows

__all__ = ["Vtab", "prepare", "status_rows"]
