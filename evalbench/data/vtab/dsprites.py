"""dSprites rendered in evalbench from its definition, so both VTAB dSprites tasks run offline.

The definition (deepmind/dsprites-dataset README): 737,280 binary 64x64 images, every combination
of color (1: white), shape (3: square, ellipse, heart), scale (6 values, linspace(0.5, 1, 6)),
orientation (40 values, linspace(0, 2*pi, 40)), posX and posY (32 values each, linspace(0, 1, 32)),
indexed in that order (latents_bases = 737280, 245760, 40960, 1024, 32, 1).

DeepMind did not publish the renderer, so the pixels here are evalbench's: each pixel is on when
its centre falls inside the shape. The shape is centred at 8 + 48 * pos pixels, spans 2 * 10 * scale
pixels (ellipse 2:1), is rotated counter-clockwise by the orientation, and the heart is the region
(x^2 + y^2 - 1)^3 <= x^2 y^3. Results on it are therefore a variant of VTAB's dSprites tasks, not
the official numbers.
"""
from __future__ import annotations

import hashlib
from typing import Any, Optional

import numpy as np
import torch

from ...errors import ConfigError
from ..imagefiles import DECODE_POLICY, stack, to_rgb_array
from ..splits import stratified_sample
from .tasks import PROCEDURAL, dsprites_bins

SHAPES = ("square", "ellipse", "heart")
FACTOR_SIZES = {"color": 1, "shape": 3, "scale": 6, "orientation": 40, "posX": 32, "posY": 32}
NUM_IMAGES = int(np.prod(list(FACTOR_SIZES.values())))  # 737,280
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
RENDERER_VERSION = "1"
_SIZE, _MARGIN, _RADIUS = 64, 8.0, 10.0
# VTAB's dSprites tasks: which factor is the label, and its number of values before binning to 16
TASKS = {"dsprites_loc": ("posX", 32), "dsprites_ori": ("orientation", 40)}
TRAIN_FRACTION, VAL_FRACTION = 0.8, 0.1  # as VTAB's slices of the single TFDS split: 80 / 10 / 10


def latents(indices: np.ndarray) -> dict[str, np.ndarray]:
    """Integer factor values (latents_classes) of dataset indices."""
    values = np.unravel_index(np.asarray(indices, dtype=np.int64), tuple(FACTOR_SIZES.values()))
    return dict(zip(FACTOR_SIZES, values, strict=True))


def render(indices: np.ndarray) -> np.ndarray:
    """Binary images (B, 64, 64) uint8 in {0, 255} of the given dataset indices (deterministic)."""
    f = latents(indices)
    b = len(f["shape"])
    ys, xs = np.mgrid[0:_SIZE, 0:_SIZE].astype(np.float64) + 0.5  # pixel centres
    cx = (_MARGIN + (_SIZE - 2 * _MARGIN) * POSITIONS[f["posX"]]).reshape(b, 1, 1)
    cy = (_MARGIN + (_SIZE - 2 * _MARGIN) * POSITIONS[f["posY"]]).reshape(b, 1, 1)
    r = (_RADIUS * SCALES[f["scale"]]).reshape(b, 1, 1)
    th = ORIENTATIONS[f["orientation"]].reshape(b, 1, 1)
    dx, dy = xs[None] - cx, cy - ys[None]  # y up, so positive angles turn counter-clockwise on screen
    u = (np.cos(th) * dx + np.sin(th) * dy) / r  # rotate the sample point by -theta into shape space
    v = (-np.sin(th) * dx + np.cos(th) * dy) / r
    u, v = u.astype(np.float32), v.astype(np.float32)
    inside = np.zeros((b, _SIZE, _SIZE), dtype=bool)
    for s in range(3):  # each shape's test only on its own images: rendering cost stays linear
        m = f["shape"] == s
        if not m.any():
            continue
        su, sv = u[m], v[m]
        if s == 0:
            inside[m] = np.maximum(np.abs(su), np.abs(sv)) <= 1.0
        elif s == 1:
            inside[m] = su * su + 4.0 * sv * sv <= 1.0
        else:
            hx, hy = 1.15 * su, 1.15 * sv - 0.1  # scale the heart's extent (about 2.3 x 2.2) to the square's
            q = hx * hx + hy * hy - 1.0
            inside[m] = q * q * q - hx * hx * hy * hy * hy <= 0.0
    return inside.astype(np.uint8) * 255


def task_labels(task: str, indices: np.ndarray) -> np.ndarray:
    """VTAB's label of a dSprites task: the factor's integer value binned to 16 classes."""
    factor, n = TASKS[task]
    return dsprites_bins(latents(indices)[factor], n, 16)


def split_indices(task: str, seed: int) -> dict[str, np.ndarray]:
    """train800 and val200 (stratified) and the held-out test split, as sorted dataset indices.

    A seeded permutation of all 737,280 indices is cut 80/10/10 like VTAB's train/val/test slices;
    train800 is drawn from the first part, val200 from the second, the whole third part is test.
    """
    perm = np.random.default_rng(seed).permutation(NUM_IMAGES)
    n_train, n_val = int(TRAIN_FRACTION * NUM_IMAGES), int(VAL_FRACTION * NUM_IMAGES)
    train_part, val_part, test_part = perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
    rng = np.random.default_rng(seed)
    out = {}
    for name, part, size in (("train800", train_part, 800), ("val200", val_part, 200)):
        pos = stratified_sample(task_labels(task, part), size, rng)
        out[name] = np.sort(part[pos])
    out["test"] = np.sort(test_part)
    return out


class DspritesPool:
    """Rendered dSprites images of the given dataset indices, labelled for one VTAB task."""

    def __init__(self, task: str, indices: np.ndarray, size: Optional[int]):
        self.task, self.indices, self.size = task, np.asarray(indices, dtype=np.int64), size
        self.labels = task_labels(task, self.indices)
        self.classes = [str(i) for i in range(16)]

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        from PIL import Image

        images = render(self.indices[np.asarray(indices, dtype=np.int64)])
        # the same RGB conversion and resize as an exported PNG of the image would get
        return stack([to_rgb_array(Image.fromarray(im, "L"), self.size, "dsprites") for im in images], "dsprites")

    def digest(self) -> str:
        h = hashlib.sha256(f"dsprites-renderer-{RENDERER_VERSION}|{self.task}|size={self.size}|{DECODE_POLICY}|".encode())
        h.update(self.indices.tobytes())
        return h.hexdigest()


class Dsprites:
    """Source kind `dsprites`: a VTAB dSprites task on evalbench's rendering, fully offline."""

    def __init__(self, task: str, seed: int = 0, image_size: Optional[int] = 224, data_root: Optional[str] = None, **_: Any):
        if task not in TASKS:
            raise ConfigError(f"dsprites task {task!r} is not one of {', '.join(TASKS)}")
        self.task, self.seed, self.image_size = task, int(seed), image_size

    def locate(self) -> str:
        return "generated by evalbench (dSprites definition)"

    def identity(self) -> dict[str, Any]:
        return {"source": "dsprites", "name": self.task, "split_variant": PROCEDURAL, "seed": self.seed,
                "renderer_version": RENDERER_VERSION, "image_size": self.image_size}

    def load(self) -> dict[str, DspritesPool]:
        return {name: DspritesPool(self.task, idx, self.image_size) for name, idx in split_indices(self.task, self.seed).items()}
