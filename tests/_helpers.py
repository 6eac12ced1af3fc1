"""Test doubles shared by several test modules."""
from __future__ import annotations

import torch


class TinyEncoder:
    """A deterministic random-projection encoder for tests that need a model but not a real one."""

    def __init__(self, dim: int = 16, seed: int = 0, size: int = 8):
        from evalbench.adapters.base import Preprocess

        self.name = f"tiny-{dim}-{seed}"
        self.preprocess = Preprocess(size, size, keep_aspect=False)
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(3 * size * size, dim, generator=g)
        self.seed = seed

    def fingerprint(self) -> dict:
        return {"adapter": "tiny", "seed": self.seed, "dim": self.weight.shape[1]}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) @ self.weight


def run_cli(args, capsys):
    """Run the CLI in-process: (exit code, stdout with whitespace collapsed, stderr).

    rich wraps long lines at the terminal width; tests compare text with whitespace collapsed.
    """
    from evalbench.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), out.err
