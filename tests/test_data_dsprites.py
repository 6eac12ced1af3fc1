"""dSprites generated from its definition: factor counts, deterministic images, VTAB's splits and labels."""
from __future__ import annotations

import numpy as np

from evalbench.data.vtab.dsprites import (NUM_IMAGES, ORIENTATIONS, POSITIONS, SCALES, Dsprites, latents, render,
                                     split_indices, task_labels)


def test_factors_follow_the_definition():
    assert NUM_IMAGES == 737_280
    f = latents(np.arange(NUM_IMAGES))
    counts = {k: np.bincount(v).tolist() for k, v in f.items()}
    assert counts["color"] == [737_280]
    assert counts["shape"] == [245_760] * 3
    assert counts["scale"] == [122_880] * 6
    assert counts["orientation"] == [18_432] * 40
    assert counts["posX"] == [23_040] * 32 and counts["posY"] == [23_040] * 32
    assert np.allclose(SCALES, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]) and ORIENTATIONS[-1] == 2 * np.pi
    assert POSITIONS[0] == 0 and POSITIONS[-1] == 1
    # latents_bases of the original file: 737280, 245760, 40960, 1024, 32, 1
    assert [f[k][i] for k, i in (("shape", 245_760), ("scale", 40_960), ("orientation", 1024), ("posX", 32), ("posY", 1))] == [1, 1, 1, 1, 1]


def test_images_are_binary_deterministic_and_follow_their_factors():
    idx = np.array([0, 1, 33, 245_760 + 5 * 40_960 + 16 * 32 + 16, 2 * 245_760 + 5 * 40_960 + 16 * 32 + 16, 737_279])
    a, b = render(idx), render(idx[::-1])[::-1]
    assert a.shape == (6, 64, 64) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 255}
    assert np.array_equal(a, b)  # same pixels whatever the batch composition
    square = render(np.array([5 * 40_960 + 16 * 32 + 16]))[0]  # scale 1, orientation 0, centre
    assert (square > 0).sum() == 400  # a 20 x 20 pixel square
    moved = render(np.array([5 * 40_960 + 17 * 32 + 16]))[0]  # posX one step right
    assert (moved > 0).sum() == 400 and not np.array_equal(square, moved)
    assert len({render(np.array([s * 245_760 + 5 * 40_960 + 16 * 32 + 16]))[0].tobytes() for s in range(3)}) == 3
    assert (a[0] > 0).any()  # the smallest square in the corner still shows


def test_vtab_splits_and_labels():
    s = split_indices("dsprites_ori", seed=0)
    assert {k: len(v) for k, v in s.items()} == {"train800": 800, "val200": 200, "test": 73_728}
    assert not (set(s["train800"]) & set(s["test"])) and not (set(s["val200"]) & set(s["test"]))
    assert np.bincount(task_labels("dsprites_ori", s["train800"]), minlength=16).min() >= 40
    assert np.array_equal(task_labels("dsprites_loc", np.array([0, 1, 32, 63, 31 * 32])), [0, 0, 0, 0, 15])
    assert np.array_equal(s["test"], split_indices("dsprites_ori", seed=0)["test"])
    pools = Dsprites("dsprites_loc", image_size=32).load()
    assert pools["val200"].batch(np.arange(3)).shape == (3, 3, 32, 32)
    assert Dsprites("dsprites_loc").identity()["split_variant"] == "procedural-stratified"
