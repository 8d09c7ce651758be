import dataclasses

import numpy as np
import pytest
import torch
from datafiles import save_image
from torch.utils.flop_counter import FlopCounterMode

from texdistill.cli import main
from texdistill.config import build_config
from texdistill.data import DatasetShape
from texdistill.method.matching import MatchProblem, Student, match
from texdistill.method.models import FlatParams, ModelSpec, convnet_cost
from texdistill.method.synthetic import ImageSet
from texdistill.presets import PRESETS
from texdistill.registry import STAGES
from texdistill.tools.estimate import plan, stage_configs

SHAPE = DatasetShape(channels=3, res=32, classes=10, train=50000, test=10000)


def test_convnet_cost_counts_parameters_and_flops():
    spec = ModelSpec(3, 10, 32, 32, width=32, depth=3)
    cost = convnet_cost(spec)
    assert cost.params == sum(p.numel() for p in spec.build().parameters())
    with FlopCounterMode(display=False) as counter:
        spec.build()(torch.zeros(1, 3, 32, 32))
    elementwise = 10 * 32 * (32 * 32 + 16 * 16 + 8 * 8)  # norm/ReLU/pool, which torch does not count
    assert cost.flops - elementwise == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_unroll_memory_per_step_matches_what_autograd_keeps():
    """The estimate's 2·B·A + 2·P per unrolled step, against the bytes of the tensors autograd saves."""
    spec, batch = ModelSpec(3, 4, 16, 16, width=16, depth=2), 6
    flat = FlatParams(spec.build())
    synthetic = ImageSet(torch.randn(batch, 3, 16, 16), torch.arange(batch) % 4, 4)

    def saved_bytes(steps: int) -> int:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        start = flat.get()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            match("unroll", Student(flat, None), synthetic, torch.tensor(0.01),
                  MatchProblem(start, start + 0.01, list(range(steps))))
        return sum(storages.values())

    per_step = (saved_bytes(3) - saved_bytes(1)) / 2
    cost = convnet_cost(spec)
    assert per_step == pytest.approx((2 * batch * cost.activations + 2 * cost.params) * 4, rel=0.2)


def test_memory_estimates_scale_as_each_gradient_mode_should():
    experts, distill, evaluate = stage_configs({"ipc": 10})
    short = plan(SHAPE, experts, distill, evaluate)
    long = plan(SHAPE, experts, dataclasses.replace(distill, syn_steps=distill.syn_steps * 2), evaluate)
    grow = {m: long.distill_bytes[m] - short.distill_bytes[m] for m in short.distill_bytes}
    assert grow["unroll"] > 0.4 * short.distill_bytes["unroll"]  # O(N)
    for mode in ("remat", "first-order"):
        assert grow[mode] == distill.syn_steps * short.cost.params * 4  # only the stored θ_i
    assert short.trajectory_bytes == experts.num_experts * (experts.epochs + 1) * short.cost.params * 4


def test_every_preset_is_a_valid_config_for_every_stage():
    for name, (description, values) in PRESETS.items():
        configs = [build_config(cls, values) for cls in STAGES.values()]
        experts, distill = configs[0], configs[1]
        assert description and experts.out == f"runs/{name}"
        assert distill.max_start_epoch - 1 + distill.expert_epochs <= experts.epochs, name


def test_texture_presets_follow_the_paper():
    _, squawk = PRESETS["imagesquawk-texture"]
    expected = {"data": "imagesquawk", "res": 128, "canvas_size": 2.0, "depth": 5, "syn_steps": 20,
                "expert_epochs": 2, "max_start_epoch": 10, "lr_img": 1000.0, "lr_lr": 1e-6, "lr_teacher": 0.01,
                "texture": True, "zca": False}
    assert {k: squawk[k] for k in expected} == expected
    _, hd = PRESETS["imagesquawk-texture-hd"]
    assert (hd["res"], hd["depth"], hd["res"] * hd["canvas_size"]) == (256, 6, 512)
    assert PRESETS["imagefruit-texture"][1]["data"] == "imagefruit"
    assert PRESETS["cifar10-ipc1"][1]["zca"] and not PRESETS["cifar10-ipc50"][1]["zca"]


def test_presets_command_lists_descriptions_and_estimates(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, (description, _) in PRESETS.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert description in line
    sized = [name for name, (_, values) in PRESETS.items() if values["data"] != "folder"]  # folders: your data
    assert out.count("unroll /") == len(sized) and "experts 6.5 GB on disk" in out  # CIFAR: 100 × 51 × 320 k
    assert out.count("size depends on your data; `--dry-run` estimates it") == len(PRESETS) - len(sized)


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for cls, n in (("moss", 7), ("bark", 5)):
        for i in range(n):
            save_image(tmp_path / "photos" / cls / f"{i}.jpg", rng.integers(0, 256, (40, 30, 3), dtype=np.uint8),
                       format="JPEG")
    out = tmp_path / "run"
    for stage in STAGES:
        extra = ["--texture", "--syn-steps", "30"] if stage == "distill" else []
        assert main([stage, "--dry-run", "--out", str(out), "--data", "folder", "--data-dir", str(tmp_path / "photos"),
                     "--res", "64", *extra]) == 0
        text = capsys.readouterr().out
        assert "2 classes: bark, moss" in text and "2 test images" in text
        assert "8 train images" in text and "2 validation images" in text  # one picture per class: --val-fraction
        assert "3×64×64" in text and "trajectories" in text and "M parameters" in text
        for mode in ("unroll", "remat", "first-order"):
            assert mode in text
    assert not out.exists()  # no run folder, no cache


def test_recognition_step_is_counted_with_its_recognisers():
    experts, distill, evaluate = stage_configs({"texture": True})
    without = plan(SHAPE, experts, distill, evaluate)
    assert "recognition" not in without.flops
    with_rec = plan(SHAPE, experts, dataclasses.replace(distill, recognition_lr=0.05), evaluate)
    train_step = 3 * with_rec.cost.flops
    recognisers = distill.recognition_models * distill.recognizer_epochs * SHAPE.train * train_step
    steps = distill.recognition_models * distill.iterations * distill.recognition_steps * distill.recognition_crops
    assert with_rec.flops["recognition"] == pytest.approx(recognisers + steps * SHAPE.classes * train_step)
    assert {k: v for k, v in with_rec.flops.items() if k != "recognition"} == without.flops
