"""Never lose a run: SIGKILL a stage at a random (seeded) moment, re-run the same command, get the
uninterrupted result bit for bit; a second writer is refused while the first holds the run folder."""

import json
import os
import random
import shutil
import signal

import pytest
import torch
from tinyrun import distill_cli, evaluate_cli, experts_cli, files_of, start_cli, wait_for_log, with_option

from texdistill.cli import main
from texdistill.method import evaluate
from texdistill.method.experts import expert_path
from texdistill.stages.rundir import RunLock
from texdistill.storage import load_tensors, read_json, read_jsonl, read_metadata

pytestmark = pytest.mark.usefixtures("single_thread")

KILL_SEED = int(os.environ.get("TEXDISTILL_KILL_SEED", "8"))  # other seeds kill at other moments


def _kill(process) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


# The three tests that SIGKILL a real process are slow (-m slow); their fast, in-process counterparts: test_bad_input's
# test_disk_full_mid_run_keeps_the_last_checkpoint_and_the_same_command_resumes (distillation stopped after a checkpoint,
# the same command resumes bit-exactly), test_experts' test_partial_expert_resumes_to_the_same_trajectory, and
# test_a_second_writer_is_refused_while_the_run_is_locked below.
@pytest.mark.slow
def test_distill_killed_at_a_random_iteration_resumes_bit_exactly(tmp_path, tiny_experts, capsys):
    iterations = 12
    argv = with_option(with_option(distill_cli(), "--iterations", str(iterations)), "--ckpt-every", "3")
    reference, run = tmp_path / "reference", tmp_path / "run"
    for folder in (reference, run):
        shutil.copytree(tiny_experts, folder)
    assert main([*argv, "--out", str(reference)]) == 0  # uninterrupted

    kill_after = random.Random(KILL_SEED).randint(4, iterations - 3)  # after the first checkpoint (it 3)
    process = start_cli([*argv, "--out", str(run)], tmp_path / "killed.err")
    wait_for_log(process, run / "log.jsonl", lambda records: any(r.get("it", 0) >= kill_after for r in records))
    _kill(process)
    logged = max(r["it"] for r in read_jsonl(run / "log.jsonl", "distill") if "loss" in r)
    checkpointed = read_metadata(run / "checkpoint.safetensors")["iteration"]
    assert checkpointed <= logged < iterations
    with capsys.disabled():
        print(f"killed after iteration {logged} (asked {kill_after}), checkpoint at {checkpointed}")

    assert main([*argv, "--out", str(run)]) == 0  # the same command again
    assert "resuming" in capsys.readouterr().err
    ours, theirs = files_of(run), files_of(reference)
    outputs = [k for k in theirs if k.endswith((".safetensors", ".png")) and "/experts/" not in k
               and not k.endswith("checkpoint.safetensors")]  # its config names the folder
    assert len(outputs) > 5
    for path in outputs:
        assert ours[path.replace(str(reference), str(run))] == theirs[path], path
    (ours, ours_meta), (theirs, theirs_meta) = (load_tensors(f / "checkpoint.safetensors") for f in (run, reference))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert ours_meta["config"].pop("out") != theirs_meta["config"].pop("out") and ours_meta == theirs_meta
    # the log reads as one run: the lines after the checkpoint that were written twice count once
    records = [r for r in read_jsonl(run / "log.jsonl", "distill") if "loss" in r]
    reference_records = [r for r in read_jsonl(reference / "log.jsonl", "distill") if "loss" in r]
    assert [r["it"] for r in records] == list(range(1, iterations + 1))
    assert [r["loss"] for r in records] == [r["loss"] for r in reference_records]


@pytest.mark.slow
def test_experts_killed_mid_expert_resume_bit_exactly(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("TEXDISTILL_NO_CACHE", "1")  # the user cache would hand the reference's experts over
    argv = [*with_option(experts_cli(), "--epochs", "4"), "--batch-train", "16"]  # ~0.2 s per epoch
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert main([*argv, "--out", str(reference)]) == 0  # uninterrupted

    epochs = 8  # 2 experts × 4 epochs
    kill_after = random.Random(KILL_SEED).randint(1, epochs - 2)
    process = start_cli([*argv, "--out", str(run)], tmp_path / "killed.err")
    wait_for_log(process, run / "log.jsonl", lambda records: sum("epoch" in r for r in records) >= kill_after)
    _kill(process)
    logged = [(r["expert"], r["epoch"]) for r in read_jsonl(run / "log.jsonl", "experts") if "epoch" in r]
    finished = sorted(p.name for p in (run / "experts").glob("expert_00?.safetensors"))
    partial = sorted(p.name for p in (run / "experts").glob("*.partial.safetensors"))
    assert len(finished) < 2
    print(f"killed after epoch {logged[-1]} (asked {kill_after} epochs); finished {finished}, partial {partial}")

    assert main([*argv, "--out", str(run)]) == 0
    for index in range(2):
        ours, ours_meta = load_tensors(expert_path(run / "experts", index))
        theirs, theirs_meta = load_tensors(expert_path(reference / "experts", index))
        assert torch.equal(ours["trajectory"], theirs["trajectory"])
        for meta in (ours_meta, theirs_meta):
            meta.pop("train_seconds")
            meta["config"].pop("out")
        assert ours_meta == theirs_meta
    assert files_of(run / "experts")[str(run / "experts" / "space.safetensors")] == (
        reference / "experts" / "space.safetensors").read_bytes()
    assert not list((run / "experts").glob("*.partial.safetensors"))
    epochs_logged = [(r["expert"], r["epoch"]) for r in read_jsonl(run / "log.jsonl", "experts") if "epoch" in r]
    assert sorted(set(epochs_logged)) == [(e, n) for e in range(2) for n in range(1, 5)]


def test_evaluation_interrupted_after_a_model_continues_with_the_next(tmp_path, tiny_run, monkeypatch):
    argv = with_option(with_option(evaluate_cli(), "--num-models", "2"), "--eval-epochs", "2")
    reference, run = tmp_path / "reference", tmp_path / "run"
    for folder in (reference, run):
        shutil.copytree(tiny_run, folder)
        (folder / "eval.json").unlink()
    assert main([*argv, "--no-baselines", "--out", str(reference)]) == 0

    trained = []
    original = evaluate.train_on_synthetic

    def train_then_die(*args, **kwargs):
        trained.append(args[4])  # the model's seed
        if len(trained) == 2:
            raise KeyboardInterrupt  # killed while training the second model
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate, "train_on_synthetic", train_then_die)
    assert main([*argv, "--no-baselines", "--out", str(run)]) == 130
    monkeypatch.setattr(evaluate, "train_on_synthetic", original)
    partial = read_json(run / "eval.json")
    assert not partial["complete"] and partial["sets"]["distilled"]["models"] == 1

    monkeypatch.setattr(evaluate, "train_on_synthetic", lambda *a, **k: (trained.append(a[4]), original(*a, **k))[1])
    assert main([*argv, "--no-baselines", "--out", str(run)]) == 0
    assert trained[2:] == [trained[1]]  # only the second model was trained again
    ours, theirs = read_json(run / "eval.json"), read_json(reference / "eval.json")
    assert ours["complete"] and ours["sets"] == theirs["sets"]


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_holder_does_not_block(tmp_path, tiny_experts, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_experts, run)
    endless = with_option(distill_cli(), "--iterations", "100000")
    process = start_cli([*endless, "--out", str(run)], tmp_path / "holder.err")
    try:
        wait_for_log(process, run / "log.jsonl", lambda records: any(r.get("it", 0) >= 2 for r in records))
        before = files_of(run / "experts")
        assert main([*endless, "--out", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"is being written by texdistill distill (pid {process.pid}" in err and "another --out" in err
        assert main([*experts_cli(), "--out", str(run)]) == 2  # every stage takes the same lock
        assert f"pid {process.pid}" in capsys.readouterr().err
        assert files_of(run / "experts") == before
    finally:
        _kill(process)
    # the kernel dropped the dead holder's lock: the run continues at once (a new --iterations is allowed)
    checkpointed = read_metadata(run / "checkpoint.safetensors")["iteration"]
    assert main([*with_option(distill_cli(), "--iterations", str(checkpointed + 1)), "--out", str(run)]) == 0
    assert read_metadata(run / "checkpoint.safetensors")["iteration"] == checkpointed + 1


def test_a_second_writer_is_refused_while_the_run_is_locked(tmp_path, tiny_experts, capsys):
    """The in-process counterpart of the test above: the lock is held here (flock refuses a second open file even
    in the same process), not by a distillation in another process."""
    run = tmp_path / "run"
    shutil.copytree(tiny_experts, run)
    with RunLock(run, "distill"):
        before = files_of(run)
        assert main([*distill_cli(), "--out", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"is being written by texdistill distill (pid {os.getpid()}" in err and "another --out" in err
        assert main([*experts_cli(), "--out", str(run)]) == 2  # every stage takes the same lock
        assert f"pid {os.getpid()}" in capsys.readouterr().err
        assert files_of(run) == before
    # released: the same command now runs
    assert main([*with_option(distill_cli(), "--iterations", "1"), "--out", str(run)]) == 0


def test_force_starts_a_stage_over_and_removes_only_its_own_files(tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "notes.txt").write_text("mine")
    experts_before, eval_before = files_of(run / "experts"), (run / "eval.json").read_bytes()
    assert (run / "snapshots" / "it_000004.safetensors").exists()

    other = [*with_option(with_option(distill_cli(), "--syn-steps", "3"), "--iterations", "2"), "--out", str(run)]
    assert main(other) == 2  # other options: refused …
    assert main([*other, "--force"]) == 0  # … unless forced
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["it_000000.safetensors", "it_000002.safetensors"]
    assert read_metadata(run / "checkpoint.safetensors")["iteration"] == 2
    assert [r["it"] for r in read_jsonl(run / "log.jsonl", "distill") if "loss" in r] == [1, 2]
    assert read_json(run / "config.json")["distill"]["syn_steps"] == 3
    assert (run / "notes.txt").read_text() == "mine" and files_of(run / "experts") == experts_before
    assert (run / "eval.json").read_bytes() == eval_before

    # evaluation notices the new set (by its SHA-256) and evaluates it afresh, same options
    assert main([*evaluate_cli(), "--out", str(run)]) == 0
    results = read_json(run / "eval.json")
    assert results["iteration"] == 2 and results["complete"]
    assert results["synthetic_sha256"] != json.loads(eval_before)["synthetic_sha256"]

    assert main([*with_option(experts_cli(), "--epochs", "3"), "--force", "--out", str(run)]) == 0
    assert read_metadata(run / "experts" / "expert_001.safetensors")["epochs"] == 3
