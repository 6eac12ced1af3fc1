"""A task's preprocessing override (VTAB: resize without centre crop) applied to an encoder, without mutating it."""
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


class TaskEncoder:
    """The same encoder seen through a task's preprocessing: fingerprint and encode are the wrapped one's.

    The cache key hashes `preprocess.to_dict()`, so features under an override never mix with others.
    """

    def __init__(self, encoder, preprocess):
        self._encoder = encoder
        self.preprocess = preprocess
        self.name = encoder.name

    def fingerprint(self) -> dict:
        return self._encoder.fingerprint()

    def encode(self, images):
        return self._encoder.encode(images)

    def __getattr__(self, attr):  # device and other optional attributes of the wrapped encoder
        return getattr(self._encoder, attr)


def task_encoder(encoder, override: dict[str, Any]):
    """`encoder` itself when the task has no override, else a TaskEncoder with the effective preprocessing."""
    if not override:
        return encoder
    return TaskEncoder(encoder, effective_preprocess(encoder.preprocess, override))
