"""Numerical guards and the distillation checkpoint: a poisoned step restores the last good state and lowers
the pixel lr; repeated poison stops the run with the good state saved; a checkpoint restores everything."""

import dataclasses
import shutil

import pytest
import torch

from texdistill.config import DistillConfig
from texdistill.errors import NumericalError
from texdistill.method import distill
from texdistill.method.distill import Distiller
from texdistill.method.setfile import RESULT, load_result
from texdistill.stages import distill as distill_stage
from texdistill.stages.outputs import CHECKPOINT, DistillOutputs
from texdistill.storage import load_tensors, read_jsonl

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def cfg(tmp_path, tiny_data, tiny_experts):
    shutil.copytree(tiny_experts, tmp_path / "run")
    return DistillConfig(out=str(tmp_path / "run"), data="fashion-mnist", data_dir=str(tiny_data), res=8, width=4,
                         syn_steps=2, expert_epochs=1, max_start_epoch=2, iterations=6, ckpt_every=2, log_every=1,
                         snapshot_every=2)


@pytest.fixture
def poison(monkeypatch):
    """poison(field, iterations): from now on, the matching result of those iterations (counted from 1 by the
    calls of match) has one part non-finite."""
    def install(field: str, iterations: set[int]) -> None:
        calls = []

        def poisoned_match(*args, **kwargs):
            result = real_match(*args, **kwargs)
            calls.append(1)
            if len(calls) in iterations:
                value = float("nan") if field != "pixel_grad" else float("inf")
                result = dataclasses.replace(result, **{field: torch.full_like(getattr(result, field), value)})
            return result

        monkeypatch.setattr(distill, "match", poisoned_match)

    real_match = distill.match
    return install


@pytest.mark.parametrize("field", ["loss", "pixel_grad", "lr_grad"])
def test_a_poisoned_step_restores_the_last_good_state_and_halves_the_pixel_lr(cfg, field, poison):
    clean = Distiller(cfg)
    clean.step()
    after_one = clean.state.capture()  # the state iteration 2 starts from

    poison(field, {3})
    guarded = Distiller(cfg)
    records = [guarded.step() for _ in range(3)]
    assert "skipped" not in records[1] and "restored the last good state" in records[2]["skipped"]
    # iteration 3 found the state iteration 2 made unusable: back to the state iteration 2 started from
    state = guarded.state.capture()
    for name in ("pixels", "log_syn_lr", "momentum_img", "momentum_lr"):
        assert torch.equal(getattr(state, name), getattr(after_one, name)), name
    assert guarded.state.lr_img == cfg.lr_img * 0.5 and records[2]["lr_img"] == cfg.lr_img * 0.5
    assert guarded.state.bad_steps == 1
    record = guarded.step()  # and it carries on
    assert "skipped" not in record and guarded.state.bad_steps == 0 and torch.isfinite(guarded.synthetic.pixels).all()


def test_a_poisoned_run_recovers_and_logs_it(cfg, poison):
    poison("loss", {3})
    distill_stage.run(cfg)
    records = [r for r in read_jsonl(cfg.run_dir / "log.jsonl", "distill") if "it" in r and "event" not in r]
    assert [r["it"] for r in records] == list(range(1, 7))
    bad = records[2]
    assert bad["loss"] is None and bad["lr_img"] == cfg.lr_img / 2 and bad["bad_steps"] == 1  # strict JSON: null
    assert all(r["lr_img"] == cfg.lr_img / 2 for r in records[3:])
    assert all(r["grad_norm_max"] >= r["grad_norm_mean"] > 0 for r in records if "skipped" not in r)
    synthetic, meta, _ = load_result(cfg.run_dir)
    assert meta["iteration"] == 6 and torch.isfinite(synthetic.pixels).all()


def test_consecutive_non_finite_steps_stop_with_the_good_state_saved(cfg, poison):
    cfg = dataclasses.replace(cfg, max_bad_steps=3)
    clean = Distiller(cfg)
    clean.step()
    good = clean.synthetic.pixels.detach().clone()

    poison("pixel_grad", {3, 4, 5})  # counted from the run below (the clean step came before the poison)
    with pytest.raises(NumericalError) as error:
        distill_stage.run(cfg)
    message = str(error.value)
    assert "3 steps in a row" in message and "iterations 3–5" in message and "--lr-img" in message
    assert "\n" not in message
    tensors, meta = load_tensors(cfg.run_dir / CHECKPOINT)
    assert torch.equal(tensors["now.pixels"], good) and meta["iteration"] == 5
    assert meta["lr_img"] == cfg.lr_img / 8 and meta["bad_steps"] == 0
    synthetic, _, _ = load_result(cfg.run_dir)
    assert torch.equal(synthetic.pixels, good)  # no NaN image was written
    assert (cfg.run_dir / "images" / "sandal.png").exists()


def test_checkpoint_round_trips_every_piece_of_state(cfg, poison):
    # a reduced lr and a pending bad step at checkpoint time, momenta present
    poison("loss", {4})
    first = Distiller(cfg)
    for _ in range(4):
        first.step()
    assert first.state.bad_steps == 1 and first.state.lr_img == cfg.lr_img / 2
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    DistillOutputs(cfg, {}).save_checkpoint(first.state)

    second = Distiller(cfg)
    tensors, meta = load_tensors(cfg.run_dir / CHECKPOINT)
    second.state.load(tensors, meta, cfg.run_dir / CHECKPOINT)
    assert (second.state.iteration, second.state.bad_steps, second.state.lr_img) == (4, 1, cfg.lr_img / 2)
    assert torch.equal(second.state.generator.get_state(), first.state.generator.get_state())
    for a, b in ((first.state.capture(), second.state.capture()), (first.state.good, second.state.good)):
        for name in ("pixels", "log_syn_lr", "momentum_img", "momentum_lr"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    # and both continue identically, the guard included
    for _ in range(2):
        assert first.step() == second.step()
    assert torch.equal(first.synthetic.pixels, second.synthetic.pixels)


def test_a_new_lr_img_replaces_the_guard_reduction_on_resume(cfg, poison):
    poison("loss", {1})
    distill_stage.run(cfg)
    assert load_tensors(cfg.run_dir / CHECKPOINT)[1]["lr_img"] == cfg.lr_img / 2
    distill_stage.run(dataclasses.replace(cfg, iterations=7))
    assert load_tensors(cfg.run_dir / CHECKPOINT)[1]["lr_img"] == cfg.lr_img / 2  # the state at iteration 7
    distill_stage.run(dataclasses.replace(cfg, iterations=8, lr_img=100.0))
    assert load_tensors(cfg.run_dir / CHECKPOINT)[1]["lr_img"] == 100.0
    assert (cfg.run_dir / RESULT).exists()
