"""Files of a run: all-or-nothing writes (a full disk leaves the old file), the append-only log that survives
a torn line, header-only metadata reads that notice truncation, and no pickle anywhere."""

import ast
import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from texdistill import storage
from texdistill.errors import CheckpointError, StorageError
from texdistill.storage import (
    JsonlLog,
    load_tensors,
    read_jsonl,
    read_metadata,
    save_npz,
    save_png,
    save_tensors,
    write_json,
)


class FullDisk:
    """A file object that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.f.write(bytes(data[:self.room]))
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


@pytest.mark.parametrize("save", [
    lambda p: save_tensors(p, {"x": torch.ones(1000)}, {"kind": "test"}),
    lambda p: write_json(p, {"x": list(range(1000))}),
    lambda p: save_png(p, torch.full((1, 64, 64), 7, dtype=torch.uint8)),
    lambda p: save_npz(p, {"x": np.arange(1000)}),
], ids=["safetensors", "json", "png", "npz"])
def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path, monkeypatch, save):
    path = tmp_path / "out.bin"
    path.write_bytes(b"the previous version")
    original = storage.os.fdopen
    monkeypatch.setattr(storage.os, "fdopen", lambda fd, mode: FullDisk(original(fd, mode), room=100))
    with pytest.raises(StorageError, match=r"cannot write .*out.bin \(its previous version is intact\): No space "
                                           r"left on device; free some disk space"):
        save(path)
    assert path.read_bytes() == b"the previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    monkeypatch.undo()
    save(path)  # space again: the write goes through
    assert path.read_bytes() != b"the previous version"


def test_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    JsonlLog(path, "distill").write(it=1, loss=0.5)
    with open(path, "a") as f:
        f.write('{"stage": "distill", "it": 2, "lo')  # killed mid-line
    assert [r["it"] for r in read_jsonl(path)] == [1]
    JsonlLog(path, "distill").write(it=2, loss=0.25)  # the resumed run
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert [r["it"] for r in read_jsonl(path)] == [1, 2]


def test_log_events_void_what_a_restart_or_resume_rewrites(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl", "distill")
    other = JsonlLog(tmp_path / "log.jsonl", "experts")
    other.write(expert=0, epoch=1)
    for it in (1, 2, 3):
        log.write(it=it, loss=float(it))
    log.write(event="start")  # --force: the distillation began again
    for it in (1, 2, 3, 4, 5):
        log.write(it=it, loss=10.0 + it)
    log.write(event="resume", it=3)  # killed after iteration 5, the checkpoint was at 3
    for it in (4, 5, 6):
        log.write(it=it, loss=20.0 + it, inf=float("inf"))
    losses = [(r["it"], r["loss"]) for r in read_jsonl(tmp_path / "log.jsonl", "distill") if "loss" in r]
    assert losses == [(1, 11.0), (2, 12.0), (3, 13.0), (4, 24.0), (5, 25.0), (6, 26.0)]
    assert read_jsonl(tmp_path / "log.jsonl", "experts")[0]["epoch"] == 1
    assert read_jsonl(tmp_path / "log.jsonl")[-1]["inf"] is None  # strict JSON: no NaN/Infinity tokens


def test_metadata_reads_the_header_only_and_notices_truncation(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"x": torch.arange(10000.0)}, {"kind": "test", "n": 3})
    assert read_metadata(path) == {"schema": storage.SCHEMA_VERSION, "kind": "test", "n": 3}
    data = path.read_bytes()
    for broken in (data[:-8], data + b"junk", data[:5], b"\x10" + bytes(7) + b"{not json", b""):
        path.write_bytes(broken)
        for read in (read_metadata, load_tensors):
            with pytest.raises(CheckpointError, match="is damaged"):
                read(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_metadata(tmp_path / "missing.safetensors")


SOURCES = [path for folder in ("src", "scripts", "benchmarks")
           for path in sorted((Path(__file__).parents[1] / folder).rglob("*.py"))]
# callable (fully qualified) → the keyword that makes it safe and its required value; None: never allowed
LOADERS = {"torch.load": ("weights_only", True), "numpy.load": ("allow_pickle", False),
           "numpy.lib.format.read_array": ("allow_pickle", False), "pickle.load": None, "pickle.loads": None,
           "marshal.load": None, "marshal.loads": None, "shelve.open": None, "dill.load": None, "dill.loads": None,
           "joblib.load": None, "pandas.read_pickle": None, "cloudpickle.load": None, "cloudpickle.loads": None}


def unsafe_loads(tree: ast.AST) -> tuple[list[str], int]:
    """(problems, safe loader calls) of a module: every call of a LOADERS entry, however it was imported
    (`import pickle as p`, `from pickle import loads as l`, `from numpy.lib import format`, …), must pass its
    safe keyword; the others must not be called at all."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname or a.name.split(".")[0]: a.name if a.asname else a.name.split(".")[0]
                            for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})

    def qualified(func: ast.expr) -> str | None:
        if isinstance(func, ast.Name):
            return aliases.get(func.id, func.id)
        if isinstance(func, ast.Attribute):
            base = qualified(func.value)
            return None if base is None else f"{base}.{func.attr}"
        return None

    problems, safe = [], 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = qualified(node.func)
        name = {"np.load": "numpy.load"}.get(name, name)
        if name not in LOADERS:
            continue
        rule = LOADERS[name]
        given = {k.arg: k.value for k in node.keywords}
        if rule is None or not (isinstance(given.get(rule[0]), ast.Constant) and given[rule[0]].value is rule[1]):
            problems.append(f"line {node.lineno}: {name}")
        else:
            safe += 1
    return problems, safe


def test_no_pickle_is_ever_loaded_from_disk():
    """torch.load only with weights_only=True, numpy's loaders only with allow_pickle=False, pickle/marshal/shelve/…
    never (CIFAR's python batches go through a restricted Unpickler subclass, which this allows)."""
    calls = 0
    for source in SOURCES:
        problems, safe = unsafe_loads(ast.parse(source.read_text()))
        assert not problems, (source, problems)
        calls += safe
    assert calls >= 2  # the demo data and the dataset cache


@pytest.mark.parametrize("code, problem", [
    ("import pickle\npickle.loads(b)", "pickle.loads"),
    ("import pickle as p\np.load(f)", "pickle.load"),
    ("from pickle import loads as l\nl(b)", "pickle.loads"),
    ("import torch as t\nt.load(f)", "torch.load"),
    ("from torch import load\nload(f, weights_only=False)", "torch.load"),
    ("import numpy as numb\nnumb.load(f)", "numpy.load"),
    ("from numpy.lib.format import read_array\nread_array(f)", "numpy.lib.format.read_array"),
    ("from numpy.lib import format\nformat.read_array(f, allow_pickle=True)", "numpy.lib.format.read_array"),
    ("import shelve\nshelve.open(p)", "shelve.open"),
])
def test_the_pickle_check_sees_through_aliases(code, problem):
    problems, _ = unsafe_loads(ast.parse(code))
    assert problems and problem in problems[0]
    safe = code.replace("(f)", "(f, weights_only=True)") if "torch" in problem else code
    if "torch" in problem and "weights_only=False" not in code:
        assert unsafe_loads(ast.parse(safe)) == ([], 1)


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_json(tmp_path / "x.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~umask
