"""Fingerprint vs provenance: the same weights in another file or layout share one feature-cache entry."""
from __future__ import annotations

import numpy as np
import torch
import torchvision

from evalbench import load_encoder
from evalbench.cache import feature_key


def test_same_weights_in_another_file_and_layout_share_the_cache_key(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, dino = tmp_path / "a" / "checkpoint.pth", tmp_path / "b" / "checkpoint.pth"
    torch.save(state, plain)
    torch.save({"teacher": {"backbone." + k: v for k, v in state.items()}}, dino)

    a = load_encoder(str(plain), arch="resnet18")
    b = load_encoder(str(dino), arch="resnet18")

    assert a.fingerprint() == b.fingerprint()
    dataset, indices = {"name": "digits", "sha256": "0" * 64}, np.arange(10)
    key_a, _ = feature_key(a.fingerprint(), a.preprocess.to_dict(), dataset, indices)
    key_b, _ = feature_key(b.fingerprint(), b.preprocess.to_dict(), dataset, indices)
    assert key_a == key_b
    # where the weights came from is still recorded, outside the cache key
    pa, pb = a.provenance(), b.provenance()
    assert pa["file"] == pb["file"] == "checkpoint.pth"
    assert pa["layout"]["layout"] == "plain state dict" and pb["layout"]["layout"].startswith("DINO")
    assert pb["layout"]["source"] == "teacher" and pa != pb
    assert pa["load"] == "weights_only=True" and pa["skipped_head_keys"] == ["fc.bias", "fc.weight"]


def test_the_architecture_spelling_does_not_change_the_cache_key(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    bare = load_encoder(str(path), arch="resnet18")
    prefixed = load_encoder(str(path), arch="torchvision:resnet18")
    assert bare.fingerprint() == prefixed.fingerprint() and bare.name == prefixed.name == "r18.resnet18"


def test_feature_facts_stay_in_the_fingerprint(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    fp = load_encoder(str(path), arch="resnet18", layer="layer3", optimize=False).fingerprint()
    assert (fp["backend"], fp["arch"], fp["layer"], fp["pool"], fp["optimized"], fp["dtype"]) == \
        ("torchvision", "resnet18", "layer3", "avg", False, "float32")
    assert not {"file", "layout", "load", "skipped_head_keys", "file_weights_sha256"} & set(fp)


def test_every_feature_choice_records_provenance_outside_the_fingerprint(tmp_path):
    from evalbench import evaluate
    from evalbench.results import read_result

    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    df = evaluate(str(path), arch="resnet18", pool="avg,native", input_size=32, tasks=["digits"], protocols=["knn"],
                  output=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)
    records = [read_result(p) for p in df["path"]]
    assert len(records) == 2 and [r.model.provenance["file"] for r in records] == ["r18.pth", "r18.pth"]
    assert all("file" not in r.model.fingerprint and "layout" not in r.model.fingerprint for r in records)
    assert load_encoder("torchvision:resnet18", random_init=True).provenance() == {}
