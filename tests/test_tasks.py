"""Task YAML loading: every shipped task is valid, and mistakes give one clear line."""
from __future__ import annotations

import textwrap

import pytest

from evalbench.errors import ConfigError, UnknownNameError
from evalbench.protocols import get_protocol
from evalbench.tasks import get_task, list_suites, list_tasks, load_task_file, resolve_tasks

GOOD = """
name: t1
version: 1
suites: [mine]
dataset: {source: sklearn-digits}
splits:
  partition: {pool: all, seed: 0, sizes: {train: 0.6, val: 0.2, test: 0.2}}
protocols: [linear]
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_every_shipped_task_is_valid_and_its_protocols_exist():
    tasks = list_tasks()
    assert {"digits", "fashion-mnist-mini", "fashion-mnist"} <= set(tasks)
    for spec in tasks.values():
        assert spec.protocols, spec.name
        for entry in spec.protocols:
            proto = get_protocol(entry.name, entry.params)  # raises on unknown names or params
            assert proto.name == entry.name
        assert "train" in spec.split_names and "test" in spec.split_names


def test_quick_suite_lists_the_offline_tasks():
    assert list_suites()["quick"] == ["digits", "fashion-mnist-mini"]


def test_unknown_key_names_the_file_and_suggests(tmp_path):
    p = write(tmp_path, "bad.yaml", GOOD.replace("protocols:", "protocol:"))
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'protocol'; did you mean 'protocols'\?"):
        load_task_file(p)


def test_missing_required_key(tmp_path):
    p = write(tmp_path, "bad.yaml", GOOD.replace("version: 1\n", ""))
    with pytest.raises(ConfigError, match="missing required key 'version'"):
        load_task_file(p)


def test_include_merges_and_the_including_file_wins(tmp_path):
    write(tmp_path, "_base.yaml", GOOD)
    p = write(tmp_path, "child.yaml", "include: _base.yaml\nname: t2\nversion: 3\n")
    spec = load_task_file(p)
    assert (spec.name, spec.version, spec.source) == ("t2", "3", "sklearn-digits")


def test_shot_lists_expand_to_one_entry_per_k(tmp_path):
    p = write(tmp_path, "fs.yaml", GOOD.replace("protocols: [linear]", "protocols:\n  - {name: fewshot-linear, shots: [1, 5]}\n  - knn"))
    ids = [e.id for e in load_task_file(p).protocols]
    assert ids == ["fewshot-linear-1shot", "fewshot-linear-5shot", "knn"]
    assert load_task_file(p).protocols[1].params == {"shots": 5}


def test_duplicate_task_names_are_an_error(tmp_path, monkeypatch):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    monkeypatch.setenv("EVALBENCH_TASKS", str(tmp_path))
    with pytest.raises(ConfigError, match="task name 't1' is defined twice"):
        list_tasks()


def test_user_task_dir_adds_tasks_and_suites(tmp_path, monkeypatch):
    write(tmp_path, "a.yaml", GOOD)
    monkeypatch.setenv("EVALBENCH_TASKS", str(tmp_path))
    assert list_suites()["mine"] == ["t1"]
    assert [t.name for t in resolve_tasks(tasks=["t1", "digits"])] == ["t1", "digits"]


def test_unknown_task_and_suite_suggest_names():
    with pytest.raises(UnknownNameError, match=r"unknown task 'digit'; did you mean 'digits'"):
        get_task("digit")
    with pytest.raises(UnknownNameError, match=r"unknown suite 'quik'; did you mean 'quick'"):
        resolve_tasks(suite="quik")
    with pytest.raises(ConfigError, match="not in suite 'quick'"):
        resolve_tasks(suite="quick", tasks=["fashion-mnist"])
