"""The 12 datasets of Kornblith et al. 2019's linear transfer suite: where they live, their official splits, the val split that chooses C."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ...errors import UnknownNameError
from . import readers, tvreaders
from .listing import Listing

#: Seed of the stratified hold-outs drawn from train where a dataset has no official val split.
HOLDOUT_SEED = 0


@dataclass(frozen=True)
class TransferDataset:
    """One dataset: its reader, the files that must exist, and the split definition in words.

    holdout: None when the dataset has an official val split; else the stratified share of the
        official train split held out (seed HOLDOUT_SEED) to choose C, the rest being train.
    download: how to obtain it (torchvision's download where it has one).
    """

    key: str
    title: str
    num_classes: int
    metric: str
    reader: Callable[..., Listing]
    needs: tuple[str, ...]
    train: str
    test: str
    holdout: Optional[float]
    val: str
    download: str
    can_download: bool = True
    multilabel: bool = False
    sizes: tuple = ()  # images in the full official copy: (train incl. the hold-out, val or None, test); None: varies


_T = TransferDataset
DATASETS = {d.key: d for d in (
    _T("food101", "Food-101", 101, "top1", tvreaders.food101,
       ("food-101/meta/train.json", "food-101/meta/test.json", "food-101/images"),
       "official train (food-101/meta/train.json, 75,750 images) minus the hold-out",
       "official test (food-101/meta/test.json, 25,250 images)", 0.1,
       "stratified 10% of official train (seed 0)", "torchvision Food101 (download=True)", sizes=(75750, None, 25250)),
    _T("cifar10", "CIFAR-10", 10, "top1", readers.cifar10,
       ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"),
       "official train (data_batch_1..5, 50,000 images) minus the hold-out", "official test (test_batch, 10,000 images)",
       0.1, "stratified 10% of official train (seed 0)", "torchvision CIFAR10 (download=True)", sizes=(50000, None, 10000)),
    _T("cifar100", "CIFAR-100", 100, "top1", readers.cifar100,
       ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
       "official train (cifar-100-python/train, 50,000 images, fine labels) minus the hold-out",
       "official test (cifar-100-python/test, 10,000 images)", 0.1, "stratified 10% of official train (seed 0)",
       "torchvision CIFAR100 (download=True)", sizes=(50000, None, 10000)),
    _T("birdsnap", "Birdsnap", 500, "top1", readers.birdsnap,
       ("birdsnap/species.txt", "birdsnap/test_images.txt", "birdsnap/download/images"),
       "every downloaded image not in birdsnap/test_images.txt, minus the hold-out",
       "the images of birdsnap/test_images.txt present in this copy (2,443 listed)", 0.1,
       "stratified 10% of train (seed 0)",
       "not in torchvision: run get_birdsnap.py from birdsnap.tgz (http://thomasberg.org/datasets/birdsnap/1.1/"
       "birdsnap.tgz) inside <root>/birdsnap", can_download=False, sizes=(None, None, 2443)),
    _T("sun397", "SUN397", 397, "top1", readers.sun397,
       ("SUN397/ClassName.txt", "SUN397/a"),
       "split 1 of 10: SUN397 Partitions Training_01.txt (19,850 images, 50 per class) minus the hold-out",
       "split 1 of 10: Testing_01.txt (19,850 images)", 0.2, "stratified 20% of Training_01 (seed 0)",
       "torchvision SUN397 (download=True) plus Partitions.zip into <root>/SUN397", sizes=(19850, None, 19850)),
    _T("cars", "Stanford Cars", 196, "top1", tvreaders.cars,
       ("stanford_cars/devkit/cars_meta.mat", "stanford_cars/devkit/cars_train_annos.mat",
        "stanford_cars/cars_test_annos_withlabels.mat", "stanford_cars/cars_train", "stanford_cars/cars_test"),
       "official train (devkit/cars_train_annos.mat, 8,144 images) minus the hold-out",
       "official test (cars_test_annos_withlabels.mat, 8,041 images)", 0.2, "stratified 20% of official train (seed 0)",
       "manual: torchvision's StanfordCars cannot download (the original URL is gone); place the files in "
       "<root>/stanford_cars as its docs describe", can_download=False, sizes=(8144, None, 8041)),
    _T("aircraft", "FGVC Aircraft", 100, "mean_per_class", tvreaders.aircraft,
       ("fgvc-aircraft-2013b/data/variants.txt", "fgvc-aircraft-2013b/data/images_variant_train.txt",
        "fgvc-aircraft-2013b/data/images_variant_val.txt", "fgvc-aircraft-2013b/data/images_variant_test.txt",
        "fgvc-aircraft-2013b/data/images"),
       "official train (images_variant_train.txt, 3,334 images)", "official test (images_variant_test.txt, 3,333 images)",
       None, "official val (images_variant_val.txt, 3,333 images)", "torchvision FGVCAircraft (download=True)", sizes=(3334, 3333, 3333)),
    _T("voc2007", "PASCAL VOC2007", 20, "map11", readers.voc2007,
       ("VOCdevkit/VOC2007/ImageSets/Main/train.txt", "VOCdevkit/VOC2007/ImageSets/Main/val.txt",
        "VOCdevkit/VOC2007/ImageSets/Main/test.txt", "VOCdevkit/VOC2007/ImageSets/Main/aeroplane_test.txt",
        "VOCdevkit/VOC2007/JPEGImages"),
       "official train (ImageSets/Main/train.txt, 2,501 images; labels from <class>_train.txt)",
       "official test (ImageSets/Main/test.txt, 4,952 images)", None,
       "official val (ImageSets/Main/val.txt, 2,510 images)",
       "torchvision VOCDetection year 2007, trainval and test (download=True)", multilabel=True, sizes=(2501, 2510, 4952)),
    _T("dtd", "DTD", 47, "top1", tvreaders.dtd,
       ("dtd/dtd/labels/train1.txt", "dtd/dtd/labels/val1.txt", "dtd/dtd/labels/test1.txt", "dtd/dtd/images"),
       "split 1: dtd/labels/train1.txt (1,880 images)", "split 1: labels/test1.txt (1,880 images)", None,
       "split 1: labels/val1.txt (1,880 images)", "torchvision DTD (download=True)", sizes=(1880, 1880, 1880)),
    _T("pets", "Oxford-IIIT Pets", 37, "mean_per_class", tvreaders.pets,
       ("oxford-iiit-pet/annotations/trainval.txt", "oxford-iiit-pet/annotations/test.txt", "oxford-iiit-pet/images"),
       "official trainval (annotations/trainval.txt, 3,680 images) minus the hold-out",
       "official test (annotations/test.txt, 3,669 images)", 0.2, "stratified 20% of official trainval (seed 0)",
       "torchvision OxfordIIITPet (download=True)", sizes=(3680, None, 3669)),
    _T("caltech101", "Caltech-101", 102, "mean_per_class", readers.caltech101,
       ("caltech101/101_ObjectCategories",),
       "30 images per class (TFDS caltech101's rule: RandomState(1234) over sorted classes and file names; "
       "3,060 images) minus the hold-out", "every other image (6,084 in the full copy)", 1 / 6,
       "stratified 5 of the 30 per class (seed 0)", "torchvision Caltech101 (download=True)", sizes=(3060, None, 6084)),
    _T("flowers102", "Oxford Flowers-102", 102, "mean_per_class", readers.flowers102,
       ("flowers-102/setid.mat", "flowers-102/imagelabels.mat", "flowers-102/jpg"),
       "official train (setid.mat trnid, 1,020 images)", "official test (setid.mat tstid, 6,149 images)", None,
       "official val (setid.mat valid, 1,020 images)", "torchvision Flowers102 (download=True)", sizes=(1020, 1020, 6149)),
)}


def transfer_dataset(key: str) -> TransferDataset:
    if key not in DATASETS:
        raise UnknownNameError("transfer dataset", key, DATASETS)
    return DATASETS[key]
