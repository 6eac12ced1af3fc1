"""Preprocess: grey to RGB, resize and crop geometry, normalisation, and its record."""
from __future__ import annotations

import pytest
import torch

from evalbench.adapters.base import Preprocess
from evalbench.errors import ConfigError


def test_grey_images_become_three_equal_channels_scaled_and_normalised():
    images = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    pre = Preprocess(8, 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), keep_aspect=False)
    out = pre(images)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25


def test_shorter_side_resize_then_centre_crop():
    images = torch.zeros((1, 3, 20, 40), dtype=torch.uint8)
    images[..., :, 18:22] = 255  # a bright vertical bar in the middle column
    out = Preprocess(8, 10, interpolation="nearest")(images)  # 20x40 -> 10x20 -> crop 8x8 at the centre
    assert out.shape == (1, 3, 8, 8)
    assert out[0, 0, 4, 4] == 1.0 and out[0, 0, 4, 0] == 0.0


def test_vtab_style_resize_ignores_aspect_ratio():
    out = Preprocess(6, 6, keep_aspect=False)(torch.zeros((1, 3, 12, 30), dtype=torch.uint8))
    assert out.shape == (1, 3, 6, 6)


def test_invalid_settings_raise_config_errors():
    with pytest.raises(ConfigError, match="interpolation 'lanczos' is not one of"):
        Preprocess(8, 8, interpolation="lanczos")
    with pytest.raises(ConfigError, match="input_size <= resize_size"):
        Preprocess(10, 8)


def test_record_is_json_ready():
    d = Preprocess(224, 256, "bicubic").to_dict()
    assert d["input_size"] == 224 and d["resize_size"] == 256 and d["mean"] == [0.0, 0.0, 0.0] and d["image_mode"] == "RGB"
