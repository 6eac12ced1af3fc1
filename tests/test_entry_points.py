"""Adapters registered under the `evalbench.adapters` entry-point group load by name."""
from __future__ import annotations

import textwrap

import pytest
import torch

from evalbench import load_encoder
from evalbench.errors import ConfigError


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A fake installed distribution that registers two adapters, found through sys.path."""
    (tmp_path / "eb_plugin.py").write_text(textwrap.dedent('''
        from evalbench import Preprocess

        class Flat:
            def __init__(self, size=4):
                self.name = f"flat-{size}"
                self.preprocess = Preprocess(input_size=size, resize_size=size, keep_aspect=False)
            def fingerprint(self):
                return {"adapter": "flat", "size": self.preprocess.input_size}
            def encode(self, images):
                return images.flatten(1)

        def make(size=4, **options):
            return Flat(size)

        def broken(**options):
            return object()
        '''))
    dist = tmp_path / "eb_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: eb-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[evalbench.adapters]\nflat = eb_plugin:make\nbroken = eb_plugin:broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_entry_point_adapter_loads_by_name_with_options(installed_plugin):
    enc = load_encoder("flat", size=6)
    assert enc.name == "flat-6"
    assert enc.encode(enc.preprocess(torch.zeros((2, 1, 6, 6), dtype=torch.uint8))).shape == (2, 3 * 6 * 6)


def test_entry_point_returning_a_non_encoder_is_a_clear_error(installed_plugin):
    with pytest.raises(ConfigError, match=r"entry point 'broken' \(eb_plugin:broken\) returned object, which lacks name, preprocess, fingerprint, encode"):
        load_encoder("broken")
