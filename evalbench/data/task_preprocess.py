"""A task's preprocessing override (VTAB: resize without centre crop) applied to an encoder's Preprocess."""
from __future__ import annotations

import dataclasses
from typing import Any


def effective_preprocess(pre, override: dict[str, Any]):
    """The encoder's Preprocess with the task's override; mean, std and interpolation are kept.

    `crop: false` feeds the whole image, squashed to the encoder's input size (resize_size =
    input_size, aspect ratio not kept); `resize: N` also sets that size to N x N.
    """
    if not override:
        return pre
    size = int(override.get("resize", pre.input_size))
    return dataclasses.replace(pre, input_size=size, resize_size=size, keep_aspect=False)
