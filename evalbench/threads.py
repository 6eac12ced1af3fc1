"""torch's intra-op thread count, set for a block of code and restored after it."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def intra_op_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with `n` intra-op threads (None: leave the setting as it is), restoring it afterwards."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
