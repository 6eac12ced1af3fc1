"""Tiny fake copies of the 12 transfer datasets, each in the on-disk layout its reader (torchvision's class or
evalbench's own) reads: the same folders, list files, .mat files and pickles as the real downloads."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 220], [200, 200, 30], [30, 200, 200], [200, 40, 200]])


def _image(path: Path, label: int, i: int, fmt: str = "JPEG") -> None:
    """A small image whose colour says its class, with sizes that vary (ragged batches)."""
    rng = np.random.default_rng(label * 1000 + i)
    h, w = 10 + i % 3, 12 + i % 2
    img = np.clip(COLOURS[label % len(COLOURS)] + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, fmt, quality=95)


def food101(root: Path, classes=("apple_pie", "bibimbap", "churros"), n_train=10, n_test=4) -> dict:
    base = root / "food-101"
    meta = {"train": {}, "test": {}}
    for c, cls in enumerate(classes):
        for split, n, offset in (("train", n_train, 0), ("test", n_test, 1000)):
            ids = [f"{cls}/{offset + i}" for i in range(n)]
            meta[split][cls] = ids
            for i, rel in enumerate(ids):
                _image(base / "images" / f"{rel}.jpg", c, offset + i)
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split in meta:
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta[split]))
    (base / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    return {"train": n_train * len(classes), "test": n_test * len(classes)}


def _cifar_batch(path: Path, labels: list[int], key: str, start: int) -> None:
    data = np.stack([np.clip(COLOURS[y % 6][None, :] + np.random.default_rng(start + i).normal(0, 20, (1024, 3)), 0,
                             255).astype(np.uint8).T.ravel() for i, y in enumerate(labels)])
    with open(path, "wb") as f:
        pickle.dump({"batch_label": "fake", key: labels, "data": data, "filenames": [f"{i}.png" for i in labels]}, f,
                    protocol=2)


def cifar(root: Path, hundred: bool = False, per_class_train=6, per_class_test=2, k=3) -> dict:
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    key = "fine_labels" if hundred else "labels"
    n_classes = 100 if hundred else 10
    train = [c for c in range(k) for _ in range(per_class_train)]
    test = [c for c in range(k) for _ in range(per_class_test)]
    if hundred:
        _cifar_batch(folder / "train", train, key, 0)
        _cifar_batch(folder / "test", test, key, 5000)
        meta = {"fine_label_names": [f"c{i}" for i in range(n_classes)], "coarse_label_names": ["x"] * 20}
        (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        for b in range(5):  # five training batches, as the real archive
            _cifar_batch(folder / f"data_batch_{b + 1}", train[b::5], key, 100 * b)
        _cifar_batch(folder / "test_batch", test, key, 5000)
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    return {"train": len(train), "test": len(test)}


def birdsnap(root: Path, dirs=("Acadian_Flycatcher", "Bald_Eagle", "Cedar_Waxwing"), n=8, n_test=2) -> dict:
    base = root / "birdsnap"
    rows = ["id\tcommon\tscientific\tdir"] + [f"{i + 1}\t{d.replace('_', ' ')}\tsp {i}\t{d}" for i, d in enumerate(dirs)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "species.txt").write_text("\n".join(rows) + "\n")
    test = []
    for c, d in enumerate(dirs):
        for i in range(n):
            _image(base / "download" / "images" / d / f"{100 + i}.jpg", c, i)
        test += [f"{d}/{100 + i}.jpg" for i in range(n_test)]
    test.append(f"{dirs[0]}/999.jpg")  # listed but never downloaded (dead URL)
    (base / "test_images.txt").write_text("path\n" + "\n".join(test) + "\n")
    return {"train": (n - n_test) * len(dirs), "test": n_test * len(dirs)}


def sun397(root: Path, classes=("/a/abbey", "/b/bakery/shop", "/c/canyon"), n=10) -> dict:
    base = root / "SUN397"
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("\n".join(classes) + "\n")
    train, test = [], []
    for c, cls in enumerate(classes):
        for i in range(2 * n):
            rel = f"{cls}/sun_{c}{i:04d}.jpg"
            _image(base / rel.lstrip("/"), c, i)
            (train if i < n else test).append(rel)
    (base / "Partitions").mkdir()
    (base / "Partitions" / "Training_01.txt").write_text("\n".join(train) + "\n")
    (base / "Partitions" / "Testing_01.txt").write_text("\n".join(test) + "\n")
    (base / "Partitions" / "Training_02.txt").write_text("\n".join(test) + "\n")  # another split: never read
    return {"train": len(train), "test": len(test)}


def cars(root: Path, k=3, n_train=10, n_test=4) -> dict:
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    names = np.array([f"Car Model {c} 2012" for c in range(k)], dtype=object)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    for split, n, mat in (("train", n_train, base / "devkit" / "cars_train_annos.mat"),
                          ("test", n_test, base / "cars_test_annos_withlabels.mat")):
        rows = []
        for c in range(k):
            for i in range(n):
                fname = f"{c:02d}{i:03d}.jpg"
                _image(base / f"cars_{split}" / fname, c, i)
                rows.append((fname, c + 1))
        ann = np.zeros((1, len(rows)), dtype=[("fname", object), ("class", object)])
        for j, (fname, cls) in enumerate(rows):
            ann[0, j] = (fname, np.array([[cls]], dtype=np.uint8))
        savemat(mat, {"annotations": ann})
    return {"train": n_train * k, "test": n_test * k}


def aircraft(root: Path, variants=("707-320", "A300B4", "Boeing 717"), n=(6, 4, 5)) -> dict:
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    counts, image_id = {}, 1000000
    for split, per in zip(("train", "val", "test"), n, strict=True):
        lines = []
        for c, v in enumerate(variants):
            for i in range(per):
                image_id += 1
                _image(data / "images" / f"{image_id}.jpg", c, i)
                lines.append(f"{image_id} {v}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        counts[split] = len(lines)
    return counts


VOC = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
       "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def voc2007(root: Path, sizes=(("train", 24), ("val", 20), ("test", 30))) -> dict:
    """Images with 1-3 of the first classes (colour of the first); class 2 is 'difficult only' on some images."""
    base = root / "VOCdevkit" / "VOC2007"
    main = base / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    image_id, counts, truth = 0, {}, {}
    for split, n in sizes:
        rng = np.random.default_rng(len(split) + n)
        ids, Y = [], np.full((n, len(VOC)), -1)  # devkit values: 1, -1, 0 (difficult only)
        for r in range(n):
            image_id += 1
            ids.append(f"{image_id:06d}")
            first = r % 3
            Y[r, first] = 1
            if rng.random() < 0.3:
                Y[r, (first + 1) % 3] = 1
            if r % 5 == 4:
                Y[r, 3] = 0
            if r % 7 == 0:
                Y[r, 4] = 1  # a class that is present but rare
            _image(base / "JPEGImages" / f"{ids[-1]}.jpg", first, r)
        (main / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for k, cls in enumerate(VOC):
            (main / f"{cls}_{split}.txt").write_text("".join(f"{i} {Y[r, k]:2d}\n" for r, i in enumerate(ids)))
        counts[split], truth[split] = n, Y
    return {**counts, "truth": truth}


def dtd(root: Path, classes=("banded", "blotchy", "braided"), n=4) -> dict:
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True, exist_ok=True)
    for split, offset in (("train", 0), ("val", 100), ("test", 200)):
        lines = []
        for c, cls in enumerate(classes):
            for i in range(n):
                name = f"{cls}_{offset + i:04d}.jpg"
                _image(data / "images" / cls / name, c, offset + i)
                lines.append(f"{cls}/{name}")
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
        (data / "labels" / f"{split}2.txt").write_text("\n".join(reversed(lines)) + "\n")  # partition 2: never read
    return {"train": n * len(classes), "val": n * len(classes), "test": n * len(classes)}


def pets(root: Path, breeds=(("Abyssinian", 1), ("american_bulldog", 2), ("Bengal", 1)), n_trainval=10, n_test=5) -> dict:
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("trainval", n_trainval, 0), ("test", n_test, 100)):
        lines = []
        for c, (breed, species) in enumerate(breeds):
            for i in range(n):
                image_id = f"{breed}_{offset + i + 1}"
                _image(base / "images" / f"{image_id}.jpg", c, offset + i)
                lines.append(f"{image_id} {c + 1} {species} {c + 1}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return {"trainval": n_trainval * len(breeds), "test": n_test * len(breeds)}


def caltech101(root: Path, dirs=("BACKGROUND_Google", "Faces_easy", "accordion", "anchor"), n=(33, 35, 31, 40)) -> dict:
    base = root / "caltech101" / "101_ObjectCategories"
    for c, (d, count) in enumerate(zip(dirs, n, strict=True)):
        for i in range(count):
            _image(base / d / f"image_{i + 1:04d}.jpg", c, i)
    return {"train": 30 * len(dirs), "test": sum(n) - 30 * len(dirs), "per_class": dict(zip(dirs, n, strict=True))}


def flowers102(root: Path, n=(4, 3, 5), k=3) -> dict:
    """setid.mat and imagelabels.mat as the originals: 1-based image ids, labels 1..102 (here the first k)."""
    from scipy.io import savemat

    base = root / "flowers-102"
    total = sum(n) * k
    labels = np.array([1 + (i % k) for i in range(total)])
    for i in range(total):
        _image(base / "jpg" / f"image_{i + 1:05d}.jpg", int(labels[i]) - 1, i)
    ids = np.arange(1, total + 1)
    rng = np.random.default_rng(0)
    rng.shuffle(ids)
    cut = np.cumsum([v * k for v in n])
    savemat(base / "imagelabels.mat", {"labels": labels.reshape(1, -1).astype(np.uint8)})
    savemat(base / "setid.mat", {"trnid": ids[:cut[0]].reshape(1, -1).astype(np.uint16),
                                 "valid": ids[cut[0]:cut[1]].reshape(1, -1).astype(np.uint16),
                                 "tstid": ids[cut[1]:].reshape(1, -1).astype(np.uint16)})
    return {"train": cut[0], "val": cut[1] - cut[0], "test": total - cut[1], "ids": ids, "cut": cut, "labels": labels}


BUILDERS = {"food101": food101, "cifar10": lambda r: cifar(r), "cifar100": lambda r: cifar(r, hundred=True),
            "birdsnap": birdsnap, "sun397": sun397, "cars": cars, "aircraft": aircraft, "voc2007": voc2007, "dtd": dtd,
            "pets": pets, "caltech101": caltech101, "flowers102": flowers102}


def build(root: Path, names=None) -> dict:
    """Fake copies of the named datasets (all 12 by default) under root; returns each builder's facts."""
    return {name: BUILDERS[name](root) for name in (names or BUILDERS)}
