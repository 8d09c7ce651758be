"""The distillation options beyond MTT: soft labels (DATM, image mode), the recognition step, clamped pixels;
each must survive a checkpoint bit for bit. Retired options: refused, or read as off from an older run."""

import shutil

import pytest
import torch
from tinyrun import distill_cli, evaluate_cli, with_option

from texdistill.cli import main
from texdistill.config import DistillConfig, build_config
from texdistill.errors import ConfigError
from texdistill.method.distill import Distiller
from texdistill.method.recognition import RecognitionTerm
from texdistill.method.setfile import load_result
from texdistill.method.synthetic import TextureCanvas
from texdistill.stages import distill as distill_stage
from texdistill.stages.evaluate import EVAL_FILE
from texdistill.stages.outputs import CHECKPOINT
from texdistill.storage import load_tensors, read_json, read_jsonl

pytestmark = pytest.mark.usefixtures("single_thread")

OPTIONS = ["--soft-labels", "--ipc", "2",
           "--recognition-lr", "0.01", "--recognition-models", "1", "--recognizer-epochs", "1", "--clamp-pixels"]


def _argv(iterations: int) -> list[str]:
    return [*with_option(distill_cli(), "--iterations", str(iterations)), *OPTIONS]


def test_soft_labels_and_recognition_resume_bit_exactly_and_evaluate(tmp_path, tiny_experts):
    reference, run = tmp_path / "reference", tmp_path / "run"
    for folder in (reference, run):
        shutil.copytree(tiny_experts, folder)
    assert main([*_argv(4), "--out", str(reference)]) == 0
    assert main([*_argv(2), "--out", str(run)]) == 0  # stop at the checkpoint of iteration 2 …
    assert main([*_argv(4), "--out", str(run)]) == 0  # … and continue to 4
    ours, _ = load_tensors(run / CHECKPOINT)
    theirs, _ = load_tensors(reference / CHECKPOINT)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for key in ("now.label_logits", "now.momentum_label", "good.label_logits",
                "now.recognition_exp_avg", "now.recognition_step"):
        assert key in ours
    records = [r for r in read_jsonl(reference / "log.jsonl", "distill") if "loss" in r]
    assert len(records) == 4 and all(r["recognition"] > 0 for r in records)

    synthetic, _, _ = load_result(reference)
    assert torch.equal(synthetic.pixels, theirs["now.pixels"])  # the result is the last iterate
    assert torch.equal(synthetic.label_logits, theirs["now.label_logits"])
    x, targets = synthetic.sample(0)
    assert targets.shape == (len(x), synthetic.num_classes) and torch.allclose(targets.sum(1), torch.ones(len(x)))
    assert synthetic.label_logits.shape == (len(synthetic.labels), synthetic.num_classes)

    assert main([*evaluate_cli(), "--out", str(reference)]) == 0  # evaluation trains on the soft labels
    assert read_json(reference / EVAL_FILE)["complete"]


def test_soft_labels_start_on_their_class(tmp_path, tiny_experts):
    values = {"data": "fashion-mnist", "out": str(tmp_path), "experts_dir": str(tiny_experts / "experts"),
              "soft_labels": True, "ipc": 2, "max_start_epoch": 2, "expert_epochs": 1}
    args = distill_cli()
    values.update(data_dir=args[args.index("--data-dir") + 1], res=int(args[args.index("--res") + 1]),
                  width=int(args[args.index("--width") + 1]))
    distiller = Distiller(build_config(DistillConfig, values))
    synthetic = distiller.synthetic
    assert torch.equal(synthetic.label_logits.argmax(1), synthetic.labels)
    assert synthetic.label_logits.std(1).min() > 0  # the expert's logits, not one-hot


def test_soft_labels_are_for_image_mode():
    with pytest.raises(ConfigError, match="--soft-labels applies to image mode"):
        DistillConfig(texture=True, soft_labels=True)
    canvas = TextureCanvas(torch.randn(2, 1, 9, 7), torch.arange(2), 2, (5, 5))
    with pytest.raises(ConfigError, match="soft labels are for image sets"):  # an older texture result with them
        canvas.use_soft_labels(torch.randn(2, 2))


def test_a_run_from_before_an_option_existed_or_after_one_retired_still_resumes():
    saved = DistillConfig().to_dict()
    del saved["lr_label"]  # written by a texdistill without --lr-label
    assert DistillConfig().changes_from(saved) == []
    assert DistillConfig(soft_labels=True, lr_label=0.5).changes_from(saved) == ["--soft-labels False → True"]
    saved.update(ema_decay=0.0, start_ramp=0, step_pool=0, min_syn_lr=0.0, label_field=False)  # retired, off
    assert DistillConfig().changes_from(saved) == []
    saved.update(ema_decay=0.99)  # retired, on: that run cannot continue here
    assert DistillConfig().changes_from(saved) == ["--ema-decay 0.99 (retired; it last ran at commit 17673e2)"]


def test_the_recognition_step_descends_the_recognisers_objective(tmp_path, tiny_experts):
    values = {"data": "fashion-mnist", "out": str(tmp_path), "experts_dir": str(tiny_experts / "experts"),
              "texture": True, "max_start_epoch": 2, "expert_epochs": 1}
    args = distill_cli()
    values.update(data_dir=args[args.index("--data-dir") + 1], res=int(args[args.index("--res") + 1]),
                  width=int(args[args.index("--width") + 1]))
    distiller = Distiller(build_config(DistillConfig, values))
    assert distiller.recognition is None  # off by default: runs without it draw the same random numbers as before
    cfg = build_config(DistillConfig, {**values, "recognition_lr": 0.05, "recognition_models": 2,
                                       "recognizer_epochs": 1})
    recognizers = Distiller(cfg).recognizers()
    assert len(recognizers) == 2 and not torch.equal(*(next(r.model.parameters()) for r in recognizers))  # 2 seeds
    term = RecognitionTerm(recognizers, prior=0.3, crops=4, dsa=None)
    synthetic, space = distiller.synthetic, distiller.space
    loss, cross_entropy = term.loss(synthetic, space, seed=5)
    assert 0 < cross_entropy < loss  # the batch-statistics prior adds to the cross-entropy
    grad, = torch.autograd.grad(loss, synthetic.pixels)
    with torch.no_grad():
        synthetic.pixels -= 0.5 * grad / grad.norm()
    assert term.loss(synthetic, space, seed=5)[0] < loss  # a step against the gradient lowers the same draw's R
    assert all(not p.requires_grad for r in recognizers for p in r.model.parameters())  # the recognisers stay fixed


def test_the_checkpoint_callback_follows_every_checkpoint(tmp_path, tiny_experts):
    shutil.copytree(tiny_experts, tmp_path / "run")
    values = {"data": "fashion-mnist", "out": str(tmp_path / "run"), "texture": True, "max_start_epoch": 2,
              "expert_epochs": 1, "syn_steps": 2, "iterations": 5, "ckpt_every": 2}
    args = distill_cli()
    values.update(data_dir=args[args.index("--data-dir") + 1], res=int(args[args.index("--res") + 1]),
                  width=int(args[args.index("--width") + 1]))
    seen = []
    distill_stage.run(build_config(DistillConfig, values),
                      on_checkpoint=lambda: seen.append(load_result(tmp_path / "run")[1]["iteration"]))
    assert seen == [2, 4, 5]  # after each checkpoint, with the result of that iteration already written
