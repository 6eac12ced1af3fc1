"""Transfer datasets read through torchvision's own dataset classes (their on-disk layouts, their official split files)."""
from __future__ import annotations

from pathlib import Path

from ...errors import DataUnavailableError
from .listing import Listing, files


def _tv(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, name)


def _one_class_list(name: str, per_split: dict[str, list]) -> list[str]:
    """The class list every split agrees on (torchvision derives it per split for DTD, Pets and Food-101;
    different lists would give one index two meanings)."""
    lists = {tuple(str(c) for c in v) for v in per_split.values()}
    if len(lists) != 1:
        shown = ", ".join(f"{k} {len(v)}" for k, v in per_split.items())
        raise DataUnavailableError(f"transfer dataset {name}: the splits name different class lists ({shown} classes); "
                                   "the copy is incomplete")
    return list(lists.pop())


def food101(root: Path) -> Listing:
    """torchvision Food101: food-101/meta/{train,test}.json (75,750 / 25,250 images, 101 classes)."""
    pools, classes = {}, {}
    for split in ("train", "test"):
        ds = _tv("Food101")(str(root), split=split)
        pools[split], classes[split] = files(ds._image_files, ds._labels), ds.classes
    return Listing(_one_class_list("food101", classes), pools)


def cars(root: Path) -> Listing:
    """torchvision StanfordCars: stanford_cars/devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat
    (8,144 / 8,041 images, 196 classes)."""
    pools, classes = {}, []
    for split in ("train", "test"):
        ds = _tv("StanfordCars")(str(root), split=split)
        pools[split] = files([p for p, _ in ds._samples], [t for _, t in ds._samples])
        classes = [str(c) for c in ds.classes]
    return Listing(classes, pools)


def aircraft(root: Path) -> Listing:
    """torchvision FGVCAircraft (variant level): fgvc-aircraft-2013b/data/images_variant_{train,val,test}.txt
    (3,334 / 3,333 / 3,333 images, 100 variants)."""
    pools, classes = {}, {}
    for split in ("train", "val", "test"):
        ds = _tv("FGVCAircraft")(str(root), split=split, annotation_level="variant")
        pools[split], classes[split] = files(ds._image_files, ds._labels), ds.classes
    return Listing(_one_class_list("aircraft", classes), pools)


def dtd(root: Path) -> Listing:
    """torchvision DTD, partition 1: dtd/dtd/labels/{train,val,test}1.txt (1,880 images each, 47 classes)."""
    pools, classes = {}, {}
    for split in ("train", "val", "test"):
        ds = _tv("DTD")(str(root), split=split, partition=1)
        pools[split], classes[split] = files(ds._image_files, ds._labels), ds.classes
    return Listing(_one_class_list("dtd", classes), pools)


def pets(root: Path) -> Listing:
    """torchvision OxfordIIITPet: oxford-iiit-pet/annotations/{trainval,test}.txt (3,680 / 3,669 images,
    37 breeds)."""
    pools, classes = {}, {}
    for pool, split in (("train", "trainval"), ("test", "test")):
        ds = _tv("OxfordIIITPet")(str(root), split=split)
        pools[pool], classes[pool] = files(ds._images, ds._labels), ds.classes
    return Listing(_one_class_list("pets", classes), pools)


def download(name: str, root: Path) -> None:
    """Fetch a dataset with torchvision's own download (raises when offline or the source is gone)."""
    root = Path(root)
    if name == "food101":
        for split in ("train", "test"):
            _tv("Food101")(str(root), split=split, download=True)
    elif name in ("cifar10", "cifar100"):
        cls = _tv("CIFAR10" if name == "cifar10" else "CIFAR100")
        cls(str(root), train=True, download=True)
    elif name == "aircraft":
        _tv("FGVCAircraft")(str(root), split="trainval", download=True)
    elif name == "dtd":
        _tv("DTD")(str(root), split="train", download=True)
    elif name == "pets":
        _tv("OxfordIIITPet")(str(root), split="trainval", download=True)
    elif name == "flowers102":
        _tv("Flowers102")(str(root), split="train", download=True)
    elif name == "caltech101":
        _tv("Caltech101")(str(root), download=True)
    elif name == "sun397":
        from torchvision.datasets.utils import download_and_extract_archive

        _tv("SUN397")(str(root), download=True)
        download_and_extract_archive(SUN397_PARTITIONS_URL, str(root / "SUN397"))
    elif name == "voc2007":
        for image_set in ("trainval", "test"):
            _tv("VOCDetection")(str(root), year="2007", image_set=image_set, download=True)
    else:
        raise DataUnavailableError(f"{name}: torchvision has no download for it; `evalbench data prepare transfer` "
                                   "prints its manual steps")


#: The ten official SUN397 train/test partitions (Training_01.txt ... Testing_10.txt, ClassName.txt).
SUN397_PARTITIONS_URL = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"


