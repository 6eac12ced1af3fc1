"""Find and remove a classifier head so a classification network returns its features."""
from __future__ import annotations

from typing import Optional

import torch


def find_head(model: torch.nn.Module, num_classes: Optional[int] = None) -> Optional[str]:
    """Name of the last nn.Linear module (the classifier head), optionally with `num_classes` outputs."""
    head = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and (num_classes is None or mod.out_features == num_classes):
            head = name
    return head


def replace_module(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, torch.nn.Sequential) and attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)


def strip_head(model: torch.nn.Module, head: Optional[str]) -> torch.nn.Module:
    """Replace the head module with Identity in place; returns the model."""
    if head:
        replace_module(model, head, torch.nn.Identity())
    return model


def head_keys(model: torch.nn.Module, head: Optional[str]) -> set[str]:
    """State-dict keys that belong to the head."""
    if not head:
        return set()
    return {k for k in model.state_dict() if k.startswith(head + ".")}
