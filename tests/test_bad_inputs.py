"""The bad-input catalogue: every mistake a user can make is one line, exit code 2, no traceback, nothing lost.

Each case runs the real CLI (in process) against the results and cache of an earlier good run and asserts:
exit code 2; no traceback; exactly one line on stderr, starting `error:`, that contains the pieces naming what
went wrong, where and the fix; and every file of the earlier run byte-identical afterwards, with no new
result file. (Lock files are not content: a case that fails inside extraction may leave an empty one.)
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from evalbench.cli import main

from _vtab_fixtures import write_export_task

ADAPTERS = '''
import numpy as np
import torch
from evalbench import Preprocess


class Base:
    name = "bad"
    preprocess = Preprocess(8, 8, keep_aspect=False)
    tag = "base"

    def fingerprint(self):
        return {"adapter": "catalogue", "tag": self.tag}

    def encode(self, x):
        return x.flatten(1)


class Raises(Base):
    tag = "raises"

    def encode(self, x):
        raise RuntimeError("boom in encode")


class WrongShape(Base):
    tag = "shape"

    def encode(self, x):
        return x


class ReturnsNone(Base):
    tag = "none"

    def encode(self, x):
        return None


class BadFingerprint(Base):
    def fingerprint(self):
        raise KeyError("weights_sha")


class Nan(Base):
    tag = "nan"

    def encode(self, x):
        return torch.full((x.shape[0], 4), float("nan"))


class Multi(Base):
    tag = "multi"
    pools = ("a", "b")

    def encode_multi(self, x):
        return {"a": x.flatten(1)}


def raises():
    raise ValueError("factory exploded")


def returns_int():
    return 3


def needs_arg(path):
    return Base()


not_callable = 42
encode_raises = Raises
wrong_shape = WrongShape
returns_none = ReturnsNone
bad_fingerprint = BadFingerprint
nan = Nan
multi = Multi
'''


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An earlier good run (results + cache), adapter modules, checkpoints and other broken files, built once."""
    root = tmp_path_factory.mktemp("catalogue")
    out, cache = root / "results", root / "cache"
    env = os.environ.get("EVALBENCH_HOME")
    os.environ["EVALBENCH_HOME"] = str(root / "home")
    try:
        code = main(["run", "--model", "pixels:8", "--tasks", "digits", "--protocols", "knn", "--output", str(out),
                     "--cache-dir", str(cache), "--no-progress"])
    finally:
        if env is not None:
            os.environ["EVALBENCH_HOME"] = env
    assert code == 0
    mods = root / "mods"
    mods.mkdir()
    (mods / "evb_catalogue.py").write_text(ADAPTERS)
    (mods / "evb_import_fails.py").write_text("raise RuntimeError('module-level failure')\n")
    (mods / "evb_needs_dep.py").write_text("import evb_not_installed_dependency  # noqa\n")
    files = _checkpoints(root / "ckpt")
    (root / "a_file").write_text("not a directory")
    return {"root": root, "out": out, "cache": cache, "mods": mods, "file": root / "a_file", **files}


def _checkpoints(d: Path) -> dict[str, Path]:
    import torchvision

    d.mkdir()
    sd = torchvision.models.resnet18().state_dict()
    paths = {name: d / f"{name}.pth" for name in ("good", "shape", "nan", "weird", "evil", "prefixed")}
    torch.save(sd, paths["good"])
    torch.save({**sd, "conv1.weight": torch.zeros(64, 3, 5, 5)}, paths["shape"])
    torch.save({**sd, "conv1.weight": torch.full_like(sd["conv1.weight"], float("nan"))}, paths["nan"])
    torch.save({"foo": 1, "bar": "x"}, paths["weird"])
    torch.save({"state_dict": sd, "hook": _Evil()}, paths["evil"])
    torch.save({"backbone." + k: v for k, v in sd.items()}, paths["prefixed"])
    blob = paths["good"].read_bytes()
    (d / "truncated.pth").write_bytes(blob[: len(blob) // 3])
    (d / "empty.pth").write_bytes(b"")
    (d / "torch.safetensors").write_bytes(blob)
    (d / "dir.pth").mkdir()
    try:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(d / "st.pth"))
    except ImportError:
        pass
    with warnings.catch_warnings():  # torch.jit.script is deprecated, and TorchScript files still exist
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(d / "script.pth"))
    return {"ckpt": d, **{f"ckpt_{k}": v for k, v in paths.items()}}


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def _task(tmp: Path, body: str) -> list[str]:
    (tmp / "tasks").mkdir(exist_ok=True)
    (tmp / "tasks" / "custom.yaml").write_text(textwrap.dedent(body))
    os.environ["EVALBENCH_TASKS"] = str(tmp / "tasks")
    from evalbench.tasks import _registry

    _registry.cache_clear()
    return []


def _export(tmp: Path, damage) -> list[str]:
    task = write_export_task(tmp / "data", "dtd", 47)
    damage(task)
    return ["--data-root", str(tmp / "data")]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:30])


def _readonly(tmp: Path) -> Path:
    d = tmp / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        return d
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("root without mount: no way to make a read-only directory here")
    return d


RUN = ["run", "--model", "pixels:8", "--tasks", "digits"]
CK = "{ckpt}"

# (id, argv after `evalbench`, pieces the error line must contain, setup(tmp, world) -> extra argv or None)
CASES = [
    # model specs
    ("unknown model", ["run", "--model", "pixls", "--tasks", "digits"], ["unknown model spec 'pixls'", "did you mean 'pixels'"]),
    ("misspelt builtin with size", ["run", "--model", "pixles:8", "--tasks", "digits"], ["'pixles:8'", "did you mean 'pixels:8'"]),
    ("misspelt prefix", ["run", "--model", "torchvison:resnet18", "--tasks", "digits"], ["did you mean 'torchvision:resnet18'"]),
    ("unknown torchvision arch", ["run", "--model", "torchvision:resnet5", "--tasks", "digits"], ["'resnet5'", "did you mean"]),
    ("pixels size not a number", ["run", "--model", "pixels:abc", "--tasks", "digits"], ["pixels size", "'abc'", "pixels:16"]),
    ("pixels size zero", ["run", "--model", "pixels:0", "--tasks", "digits"], ["pixels size", "'0'", "pixels:16"]),
    ("adapter module missing", ["run", "--model", "evb_nowhere_xyz:make", "--tasks", "digits"], ["'evb_nowhere_xyz'", "PYTHONPATH"]),
    ("adapter attribute missing", ["run", "--model", "evb_catalogue:rases", "--tasks", "digits"], ["no attribute 'rases'", "did you mean 'raises'"]),
    ("adapter module fails on import", ["run", "--model", "evb_import_fails:make", "--tasks", "digits"],
     ["'evb_import_fails'", "RuntimeError: module-level failure", "--debug"]),
    ("adapter module lacks a dependency", ["run", "--model", "evb_needs_dep:make", "--tasks", "digits"],
     ["'evb_not_installed_dependency'", "pip install"]),
    ("factory raises", ["run", "--model", "evb_catalogue:raises", "--tasks", "digits"],
     ["'evb_catalogue:raises'", "factory raised ValueError: factory exploded", "--debug"]),
    ("factory not callable", ["run", "--model", "evb_catalogue:not_callable", "--tasks", "digits"], ["not callable"]),
    ("factory returns no encoder", ["run", "--model", "evb_catalogue:returns_int", "--tasks", "digits"], ["returned int", "lacks"]),
    ("factory needs an argument", ["run", "--model", "evb_catalogue:needs_arg", "--tasks", "digits"], ["could not be called"]),
    ("encode raises", ["run", "--model", "evb_catalogue:encode_raises", "--tasks", "digits"],
     ["'evb_catalogue:encode_raises'", "encode() raised RuntimeError: boom in encode", "--debug"]),
    ("encode wrong shape", ["run", "--model", "evb_catalogue:wrong_shape", "--tasks", "digits"], ["encode() returned shape", "(B, D)"]),
    ("encode returns None", ["run", "--model", "evb_catalogue:returns_none", "--tasks", "digits"], ["encode() returned NoneType", "numpy"]),
    ("fingerprint raises", ["run", "--model", "evb_catalogue:bad_fingerprint", "--tasks", "digits"], ["fingerprint() raised KeyError"]),
    ("encode_multi lacks a choice", ["run", "--model", "evb_catalogue:multi", "--tasks", "digits"], ["encode_multi()", "lacking 'b'"]),
    ("NaN features from a custom encoder", ["run", "--model", "evb_catalogue:nan", "--tasks", "digits"],
     ["NaN or inf", "check the encoder's weights"]),
    ("random-init on pixels", [*RUN, "--random-init"], ["--random-init applies to"]),
    ("layer on pixels", [*RUN, "--layer", "layer3"], ["do not apply to the pixels baseline"]),
    ("pool not known", ["run", "--model", "torchvision:resnet18", "--pool", "bogus", "--tasks", "digits"], ["--pool 'bogus'", "one of"]),
    # checkpoints
    ("checkpoint missing", ["run", "--model", CK + "/nope.pth", "--arch", "resnet18", "--tasks", "digits"], ["nope.pth does not exist"]),
    ("checkpoint is a directory", ["run", "--model", CK + "/dir.pth", "--arch", "resnet18", "--tasks", "digits"], ["is a directory", "weights file"]),
    ("checkpoint empty", ["run", "--model", CK + "/empty.pth", "--arch", "resnet18", "--tasks", "digits"], ["empty (0 bytes)"]),
    ("checkpoint truncated", ["run", "--model", CK + "/truncated.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["corrupt or truncated", "download or copy it again"]),
    ("torch file named .safetensors", ["run", "--model", CK + "/torch.safetensors", "--arch", "resnet18", "--tasks", "digits"],
     ["not a safetensors file", "rename it"]),
    ("safetensors file named .pth", ["run", "--model", CK + "/st.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["is a safetensors file", "rename it"]),
    ("checkpoint with pickled code", ["run", "--model", CK + "/evil.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["blocked globals: builtins.print", "--trust-checkpoint"]),
    ("TorchScript archive", ["run", "--model", CK + "/script.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["TorchScript archive", "state_dict()"]),
    ("checkpoint layout not recognised", ["run", "--model", CK + "/weird.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["layout not recognised", "foo, bar", "--checkpoint-key"]),
    ("checkpoint without --arch", ["run", "--model", CK + "/good.pth", "--tasks", "digits"], ["also pass --arch"]),
    ("checkpoint key not found", ["run", "--model", CK + "/good.pth", "--arch", "resnet18", "--checkpoint-key", "nope.x",
                                  "--tasks", "digits"], ["--checkpoint-key 'nope.x' not found", "conv1.weight"]),
    ("checkpoint shape mismatch", ["run", "--model", CK + "/shape.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["conv1.weight", "(64, 3, 5, 5)", "(64, 3, 7, 7)", "check --arch"]),
    ("checkpoint prefix mismatch", ["run", "--model", CK + "/prefixed.pth", "--arch", "resnet18", "--tasks", "digits"],
     ["prefixed.pth", "prefix 'backbone.'", "--checkpoint-key"]),
    ("NaN weights in fp32", ["run", "--model", CK + "/nan.pth", "--arch", "resnet18", "--input-size", "32", "--tasks", "digits"],
     ["NaN or inf", "already float32"]),
    # numeric and choice options (argparse types: refused before anything loads)
    ("batch size 0", [*RUN, "--batch-size", "0"], ["--batch-size", "positive integer", "got 0"]),
    ("batch size negative", [*RUN, "--batch-size", "-1"], ["--batch-size", "positive integer"]),
    ("batch size not a number", [*RUN, "--batch-size", "lots"], ["--batch-size", "'lots'"]),
    ("input size 0", [*RUN, "--input-size", "0"], ["--input-size", "positive integer"]),
    ("crop pct above 1", [*RUN, "--crop-pct", "1.5"], ["--crop-pct", "(0, 1]"]),
    ("crop pct 0", [*RUN, "--crop-pct", "0"], ["--crop-pct", "(0, 1]"]),
    ("crop pct nan", [*RUN, "--crop-pct", "nan"], ["--crop-pct", "(0, 1]"]),
    ("resize negative", [*RUN, "--resize", "-5"], ["--resize", "positive integer"]),
    ("seed negative", [*RUN, "--seed", "-1"], ["--seed", "non-negative integer"]),
    ("mean with two values", [*RUN, "--mean", "0.5,0.5"], ["--mean", "3 numbers"]),
    ("mean nan", [*RUN, "--mean", "nan,0,0"], ["--mean", "3 numbers"]),
    ("std zero", [*RUN, "--std", "0,0,0"], ["--std", "positive"]),
    ("dtype unknown", [*RUN, "--dtype", "fp64"], ["--dtype", "fp64"]),
    ("interpolation unknown", [*RUN, "--interpolation", "cubic"], ["--interpolation", "'cubic'"]),
    ("resize below input size", ["run", "--model", "torchvision:resnet18", "--random-init", "--input-size", "32", "--resize", "16",
                                 "--tasks", "digits"], ["--resize 16", "smaller than the input size 32"]),
    ("resize and crop pct", ["run", "--model", "torchvision:resnet18", "--random-init", "--resize", "40", "--crop-pct", "0.8",
                             "--tasks", "digits"], ["--resize and --crop-pct"]),
    ("model option missing", ["run", "--tasks", "digits"], ["--model"]),
    ("unknown option", [*RUN, "--batchsize", "8"], ["unrecognized arguments: --batchsize"]),
    # files and directories, checked before the model loads
    ("output is a file", [*RUN, "--output", "{file}"], ["--output", "a_file is a file", "pass a directory"]),
    ("output under a file", [*RUN, "--output", "{file}/sub"], ["--output", "cannot be created", "a_file is a file"]),
    ("output cannot be created", [*RUN, "--output", "/proc/evalbench-out"], ["--output /proc/evalbench-out", "cannot be created"]),
    ("output read-only", RUN, ["--output", "fix its permissions"], lambda tmp, w: ["--output", str(_readonly(tmp))]),
    ("cache dir is a file", [*RUN, "--cache-dir", "{file}"], ["--cache-dir", "is a file"]),
    ("cache dir under a file", [*RUN, "--cache-dir", "{file}/c"], ["--cache-dir", "cannot be created"]),
    ("cache dir read-only", RUN, ["--cache-dir", "fix its permissions"], lambda tmp, w: ["--cache-dir", str(_readonly(tmp))]),
    ("data root missing", [*RUN, "--data-root", "{root}/no-such-dir"], ["--data-root", "no-such-dir does not exist"]),
    ("data root is a file", [*RUN, "--data-root", "{file}"], ["--data-root", "is a file, not a directory"]),
    ("reference missing", [*RUN, "--reference", "{root}/no-ref"], ["--reference", "no-ref is not a directory"]),
    # tasks, suites, protocols and data
    ("unknown suite", ["run", "--model", "pixels", "--suite", "quik"], ["unknown suite 'quik'", "did you mean 'quick'"]),
    ("unknown task", ["run", "--model", "pixels", "--tasks", "digts"], ["unknown task 'digts'", "did you mean 'digits'"]),
    ("unknown protocol", [*RUN, "--protocols", "knnn"], ["unknown protocol 'knnn'", "did you mean 'knn'"]),
    ("no suite or tasks", ["run", "--model", "pixels"], ["--suite", "--tasks"]),
    ("empty task list", ["run", "--model", "pixels", "--tasks", ","], ["--suite", "--tasks"]),
    ("vtab without data", ["run", "--model", "pixels:8", "--suite", "vtab"],
     ["tasks have no data here", "and 13 more", "--allow-missing", "evalbench data status vtab"]),
    ("dataset not downloadable", ["run", "--model", "pixels", "--tasks", "mnist-offline"], ["dataset mnist not found", "--data-root"],
     lambda tmp, w: _task(tmp, """\
        name: mnist-offline
        version: 1
        dataset: {source: idx, name: mnist, download: false}
        splits: {train: {pool: train}, test: {pool: test}}
        protocols: [knn]
        """)),
    ("task YAML unknown key", ["run", "--model", "pixels", "--tasks", "custom"], ["custom.yaml", "protocls", "did you mean 'protocols'"],
     lambda tmp, w: _task(tmp, """\
        name: custom
        version: 1
        dataset: {source: sklearn-digits}
        splits: {partition: {pool: all, sizes: {train: 0.5, test: 0.5}}}
        protocls: [knn]
        """)),
    ("task YAML syntax error", ["run", "--model", "pixels", "--tasks", "custom"], ["custom.yaml"],
     lambda tmp, w: _task(tmp, "name: custom\nversion: [1\n")),
    ("split larger than the data", ["run", "--model", "pixels:8", "--tasks", "custom"], ["5000", "1797"],
     lambda tmp, w: _task(tmp, """\
        name: custom
        version: 1
        dataset: {source: sklearn-digits}
        splits: {partition: {pool: all, sizes: {train: 5000, test: 100}}}
        protocols: [knn]
        """)),
    ("few-shot K above a class count", ["run", "--model", "pixels:8", "--tasks", "custom", "--output", "{root}/fs-out"],
     ["400-shot", "at least 400 train examples per class"],
     lambda tmp, w: _task(tmp, """\
        name: custom
        version: 1
        dataset: {source: sklearn-digits}
        splits: {partition: {pool: all, sizes: {train: 0.3, val: 0.2, test: 0.5}}}
        protocols: [{name: fewshot-linear, shots: [400]}]
        """)),
    ("image listed but missing", ["run", "--model", "pixels:8", "--tasks", "vtab-dtd"], ["000000.png", "listed but missing", "re-download"],
     lambda tmp, w: _export(tmp, lambda t: (t / "images/train800/000000.png").unlink())),
    ("image zero bytes", ["run", "--model", "pixels:8", "--tasks", "vtab-dtd"], ["000000.png", "empty (0 bytes)", "re-download"],
     lambda tmp, w: _export(tmp, lambda t: (t / "images/train800/000000.png").write_bytes(b""))),
    ("image truncated", ["run", "--model", "pixels:8", "--tasks", "vtab-dtd"], ["000000.png", "re-download"],
     lambda tmp, w: _export(tmp, lambda t: _truncate(t / "images/train800/000000.png"))),
    ("image undecodable", ["run", "--model", "pixels:8", "--tasks", "vtab-dtd"], ["000000.png", "cannot decode", "re-download"],
     lambda tmp, w: _export(tmp, lambda t: (t / "images/train800/000000.png").write_text("not an image"))),
    ("label outside the classes", ["run", "--model", "pixels:8", "--tasks", "vtab-dtd"], ["test.txt:1", "label 99 outside [0, 47)"],
     lambda tmp, w: _export(tmp, lambda t: (t / "test.txt").write_text(
         (t / "test.txt").read_text().replace(" 0\n", " 99\n", 1)))),
    ("name taken by another model", ["run", "--model", "pixels:6", "--tasks", "digits", "--protocols", "knn", "--name", "pixels-8"],
     ["--name pixels-8", "holds results of another model", "choose another --name"]),
    # other commands
    ("compare one run", ["compare", "pixels-8", "--results", "{out}"], ["at least two runs"]),
    ("compare unknown model", ["compare", "pixels-8", "pixls-8", "--results", "{out}"], ["pixls-8"]),
    ("compare bootstrap 0", ["compare", "a", "b", "--bootstrap", "0"], ["--bootstrap", "positive integer"]),
    ("compare seed negative", ["compare", "a", "b", "--seed", "-3"], ["--seed", "non-negative"]),
    ("rescore level 1", ["rescore", "{out}", "--level", "1"], ["--level", "between 0 and 1"]),
    ("data status unknown folder", ["data", "status", "vtab", "--tasks", "dtdd"], ["unknown VTAB task 'dtdd'", "did you mean 'dtd'"]),
    ("data prepare without root", ["data", "prepare", "vtab"], ["--root"]),
    ("cache verify on a file", ["cache", "verify", "--cache-dir", "{file}"], ["--cache-dir", "is a file"]),
    ("cache prune negative age", ["cache", "prune", "--older-than", "-1"], ["--older-than", "days"]),
    ("cache without action", ["cache"], ["ACTION"]),
    ("unknown command", ["frobnicate"], ["invalid choice: 'frobnicate'"]),
]


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from parse_args
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, world, tmp_path, capsys, monkeypatch):
    name, argv, pieces, *setup = case
    monkeypatch.syspath_prepend(str(world["mods"]))
    monkeypatch.setenv("EVALBENCH_TASKS", "")  # records the original value, restored after the case
    monkeypatch.delenv("EVALBENCH_TASKS")
    subst = {k: str(v) for k, v in world.items()}
    argv = [a.format(**subst) for a in argv]
    if argv[0] == "run":
        if "--output" not in argv:
            argv += ["--output", str(world["out"])]
        if "--cache-dir" not in argv:
            argv += ["--cache-dir", str(world["cache"])]
        argv += ["--no-progress"]
    if setup:
        argv += setup[0](tmp_path, world) or []
    before = {"out": _files(world["out"]), "cache": _files(world["cache"])}
    try:
        code, out, err = _cli(argv, capsys)
    finally:
        if (tmp_path / "ro").is_mount():
            subprocess.run(["umount", str(tmp_path / "ro")], check=False)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("evalbench: ")]  # layout notice
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    flat = " ".join(err.split())
    for piece in pieces:
        assert piece in flat, f"{piece!r} not in {flat!r}"
    assert len(flat) < 700, f"a one-line error should be short: {len(flat)} characters"
    after_out = _files(world["out"])
    assert after_out == before["out"], "results of the earlier run changed or a result was added"
    after_cache = _files(world["cache"])
    assert {k: v for k, v in after_cache.items() if k in before["cache"]} == before["cache"]
    assert set(before["cache"]) <= set(after_cache)


def test_catalogue_size():
    """The issue asks for the count; keep it from shrinking unnoticed."""
    assert len(CASES) >= 80 and len({c[0] for c in CASES}) == len(CASES)


def test_console_script_prints_no_traceback_for_user_code(tmp_path, world):
    """The installed entry point, as a user runs it: one line and exit 2; --debug adds the traceback."""
    exe = Path(sys.executable).with_name("evalbench")
    env = {**os.environ, "EVALBENCH_HOME": str(tmp_path), "PYTHONPATH": str(world["mods"])}
    argv = [str(exe), "run", "--model", "evb_catalogue:encode_raises", "--tasks", "digits", "--output", str(tmp_path / "o"),
            "--no-progress"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: model 'evb_catalogue:encode_raises': encode() raised RuntimeError: boom in encode; fix the adapter, "
        "or rerun with --debug for the traceback"]
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, env=env)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and 'raise RuntimeError("boom in encode")' in debug.stderr


def test_an_internal_error_is_one_line_exit_1_and_the_traceback_with_debug(tmp_path, capsys, monkeypatch):
    """A bug (not a user mistake) still prints no traceback unless asked: one line that says what to do, exit code 1."""
    import evalbench.runner as runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(runner, "plan_tasks", broken)
    argv = ["run", "--model", "pixels:8", "--tasks", "digits", "--output", str(tmp_path / "o"), "--cache-dir",
            str(tmp_path / "c"), "--no-progress"]
    code, _, err = _cli(argv, capsys)
    assert code == 1 and err.strip().splitlines() == [
        "error: internal error ZeroDivisionError: division by zero; rerun with --debug for the traceback and report it "
        "at the evalbench issue tracker"]
    code, _, err = _cli([*argv, "--debug"], capsys)
    assert code == 1 and "Traceback (most recent call last)" in err and "ZeroDivisionError" in err


def test_an_os_error_mid_run_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    import evalbench.runner as runner

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.json"))

    monkeypatch.setattr(runner, "plan_tasks", denied)
    code, _, err = _cli(["run", "--model", "pixels:8", "--tasks", "digits", "--output", str(tmp_path / "o"),
                         "--cache-dir", str(tmp_path / "c"), "--no-progress"], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"error: Permission denied: {tmp_path / 'x.json'} (PermissionError); check its "
                                        "permissions"]
