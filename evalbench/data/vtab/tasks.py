"""The 19 VTAB-1k tasks: export folder names, groups, class counts and VTAB's label definitions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UnknownNameError

OFFICIAL = "vtab-1k-official"          # the community export of the TFDS slices (train800/val200/test)
SOURCE_STRATIFIED = "source-stratified"  # our own seeded, stratified 800/200 draw from the source dataset
PROCEDURAL = "procedural-stratified"     # dSprites rendered in evalbench, seeded stratified 800/200
GROUPS = ("natural", "specialized", "structured")


@dataclass(frozen=True)
class VtabTask:
    folder: str           # folder name in the community export (NOAH get_vtab1k.py)
    group: str
    num_classes: int
    source: str           # how the source routes (torchvision, Hugging Face) reach the data, or why they cannot
    manual: str = ""      # what a user must do by hand, when anything


VTAB_TASKS: dict[str, VtabTask] = {t.folder: t for t in [
    VtabTask("caltech101", "natural", 102, "Hugging Face clip-benchmark/wds_vtab-caltech101 (TFDS caltech101, 102 classes "
             "incl. BACKGROUND_Google; train / test); torchvision's Caltech101 has 101 classes and cannot stand in",
             "community export, or the Hugging Face download"),
    VtabTask("cifar", "natural", 100, "torchvision CIFAR100 (train / test)"),
    VtabTask("dtd", "natural", 47, "torchvision DTD partition 1 (train / val / test)"),
    VtabTask("oxford_flowers102", "natural", 102, "torchvision Flowers102 (train / val / test)"),
    VtabTask("oxford_iiit_pet", "natural", 37, "torchvision OxfordIIITPet (trainval / test)"),
    VtabTask("svhn", "natural", 10, "torchvision SVHN (train / test), else Hugging Face clip-benchmark/wds_vtab-svhn"),
    VtabTask("sun397", "natural", 397, "torchvision SUN397 (no official split: test is a seeded stratified 20%)"),
    VtabTask("patch_camelyon", "specialized", 2, "torchvision PCAM (train / val / test; needs h5py), else Hugging Face "
             "clip-benchmark/wds_vtab-pcam (train / test)"),
    VtabTask("eurosat", "specialized", 10, "torchvision EuroSAT RGB (one pool: seeded stratified 60/20/20 as VTAB's slices)"),
    VtabTask("resisc45", "specialized", 45, "Hugging Face clip-benchmark/wds_vtab-resisc45 (VTAB's 60% train / 20% test), "
             "else jonathan-roberts1/NWPU-RESISC45 (all images, cut 60/20/20); no torchvision loader",
             "community export, or the Hugging Face download"),
    VtabTask("diabetic_retinopathy", "specialized", 5, "Hugging Face clip-benchmark/wds_vtab-diabetic_retinopathy "
             "(train / test), built by CLIP_benchmark from TFDS config btgraham-300, the preprocessing VTAB uses "
             "(Graham's: scale to a 300 px eye radius, subtract local average colour); known deviation: images "
             "re-encoded by that export and split sizes not checked against TFDS; no torchvision loader (Kaggle login)",
             "community export (btgraham-300 images), or the Hugging Face download"),
    VtabTask("clevr_count", "structured", 8, "torchvision CLEVRClassification (train / val as test); label = objects - 3"),
    VtabTask("clevr_dist", "structured", 6, "torchvision CLEVRClassification files plus CLEVR scene JSON; label = closest "
             "object depth binned at 8, 8.5, 9, 9.5, 10; else Hugging Face clip-benchmark/wds_vtab-clevr_closest_object_distance"),
    VtabTask("dmlab", "structured", 6, "Hugging Face clip-benchmark/wds_vtab-dmlab (TFDS dmlab train / test, 6 classes); "
             "no torchvision loader", "community export, or the Hugging Face download"),
    VtabTask("kitti", "structured", 4, "torchvision Kitti (training images) plus the object devkit's drive mapping "
             "(devkit_object.zip), split by drive as TFDS kitti 3.1.0 (train / val / test videos); label = closest "
             "vehicle distance binned at 8 and 20 m, class 3 = no vehicle"),
    VtabTask("dsprites_loc", "structured", 16, "generated in evalbench (dSprites definition); x position 32 -> 16 bins"),
    VtabTask("dsprites_ori", "structured", 16, "generated in evalbench (dSprites definition); orientation 40 -> 16 bins"),
    VtabTask("smallnorb_azi", "structured", 18, "Hugging Face clip-benchmark/wds_vtab-smallnorb_label_azimuth (label = "
             "raw azimuth / 2), else Ramos-Ramos/smallnorb (raw 0, 2, ..., 34 halved; val200 from test[:50%], "
             "scored on test[50%:] as VTAB); no torchvision loader",
             "community export, or the Hugging Face download"),
    VtabTask("smallnorb_ele", "structured", 9, "Hugging Face clip-benchmark/wds_vtab-smallnorb_label_elevation (0..8), "
             "else Ramos-Ramos/smallnorb (val200 from test[:50%], scored on test[50%:] as VTAB); no torchvision loader", "community export, or the Hugging Face download"),
]}


def vtab_task(folder: str) -> VtabTask:
    if folder not in VTAB_TASKS:
        raise UnknownNameError("VTAB task", folder, VTAB_TASKS)
    return VTAB_TASKS[folder]


# --- VTAB's label definitions (google-research/task_adaptation data/*.py), as pure functions ---

def clevr_count_label(num_objects: np.ndarray) -> np.ndarray:
    """Clevr-Count: number of objects minus 3 (scenes hold 3..10 objects -> 8 classes)."""
    return np.asarray(num_objects, dtype=np.int64) - 3


CLEVR_DIST_THRESHOLDS = np.array([0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0])


def clevr_dist_label(closest_depth: np.ndarray) -> np.ndarray:
    """Clevr-Dist: depth of the closest object; label = max i with threshold[i] < depth (6 classes)."""
    d = np.asarray(closest_depth, dtype=np.float64)[..., None]
    return (CLEVR_DIST_THRESHOLDS < d).sum(-1).astype(np.int64) - 1


KITTI_THRESHOLDS = np.array([-100.0, 8.0, 20.0, 999.0])
KITTI_VEHICLES = ("Car", "Van", "Truck")  # TFDS kitti type ids 0, 1, 2


def kitti_dist_label(types: list[list[str]], depths: list[list[float]]) -> np.ndarray:
    """KITTI-Dist: z of the closest Car/Van/Truck (1000 when none) binned at 8 and 20 m; 4 classes."""
    out = []
    for ts, zs in zip(types, depths, strict=True):
        z = min([float(d) for t, d in zip(ts, zs, strict=True) if t in KITTI_VEHICLES] + [1000.0])
        out.append(int((KITTI_THRESHOLDS < z).sum()) - 1)
    return np.asarray(out, dtype=np.int64)


def dsprites_bins(values: np.ndarray, num_original: int, num_classes: int = 16) -> np.ndarray:
    """dSprites: group neighbouring integer factor values, floor(value / (num_original / num_classes))."""
    return np.floor(np.asarray(values, dtype=np.float64) / (num_original / num_classes)).astype(np.int64)


def smallnorb_label(raw_azimuth: np.ndarray | None = None, raw_elevation: np.ndarray | None = None) -> np.ndarray:
    """smallNORB: azimuth is stored as 0, 2, ..., 34 (-> 18 classes, value / 2); elevation 0..8 (9 classes)."""
    if raw_azimuth is not None:
        return np.asarray(raw_azimuth, dtype=np.int64) // 2
    return np.asarray(raw_elevation, dtype=np.int64)
