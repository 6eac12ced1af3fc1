"""torch.distributed under torchrun: process-group set-up, the shard ranges of each rank, barriers and broadcasts.

Extraction under `torchrun --nproc-per-node N -m evalbench run ...` splits each split's fixed
index-range shards (extract.SHARD_SIZE, independent of the number of ranks) round-robin over the
ranks; every rank writes its own shards into the shared cache, and rank 0 commits each entry after
a barrier. Protocols then run on rank 0 only. Because the ranges never depend on the rank count, a
crashed run resumes its finished shards under any number of ranks.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from .errors import ConfigError

#: Ranks wait at barriers while the slowest one finishes its shards: allow long extractions.
BARRIER_TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torch.distributed job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled; for small plans, never for features)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def my_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """The shard ranges this rank encodes: every world_size-th, by position in the full list,
        so that the split is the same on every rank whatever each has already found on disk."""
        return [r for i, r in enumerate(ranges) if i % self.world_size == self.rank]


SINGLE = DistContext()


def under_torchrun() -> bool:
    """True when torchrun (or srun with the same variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (env://), or run alone.

    The backend is nccl when this rank extracts on CUDA, else gloo (CPU). Idempotent.
    """
    if not under_torchrun():
        return SINGLE
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        cuda = resolve_device(device, local).type == "cuda"
        if cuda:  # "cuda" (and models built on the default device) now mean this rank's GPU
            torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl" if cuda else "gloo", init_method="env://", rank=rank,
                                             world_size=world, timeout=BARRIER_TIMEOUT)
    return DistContext(rank, world, local)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def resolve_device(device: Optional[str], local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when available (the local rank's GPU under torchrun), else CPU; 'cuda' under
    torchrun -> cuda:LOCAL_RANK; 'cpu', 'cuda:N' as given.

    Raises:
        ConfigError: a malformed name, or CUDA asked for where there is none.
    """
    device = device or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"--device {device}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        if device == "cuda":
            device = f"cuda:{local_rank % torch.cuda.device_count()}"
    return torch.device(device)


def place_encoder(encoder: Any, device: torch.device) -> bool:
    """Move an encoder that runs a torch module (ModuleEncoder and look-alikes) to `device`.

    Returns True when moved; encoders without a `module` and `device` (pixels, custom ones) compute
    where they were built and are left alone.
    """
    module, current = getattr(encoder, "module", None), getattr(encoder, "device", None)
    if not isinstance(module, torch.nn.Module) or current is None:
        return False
    if torch.device(current) != device:
        encoder.module = module.to(device)
        encoder.device = device
    return True
