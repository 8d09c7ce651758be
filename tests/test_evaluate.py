"""The evaluation protocol with known answers: what each set trains on, with which lr and schedule, and what
real images and noise score."""

import json
import shutil
import statistics
from types import SimpleNamespace

import pytest
import torch
from tinyrun import SIDE, evaluate_cli, with_option

from texdistill.cli import main
from texdistill.config import EvalConfig
from texdistill.data import PixelSpace, load_dataset
from texdistill.method import evaluate
from texdistill.method.evaluate import plus_minus, seam_report, summary, train_on_synthetic
from texdistill.method.models import ModelSpec
from texdistill.method.synthetic import ImageSet, TextureCanvas, build_synthetic
from texdistill.method.training import top1_accuracy
from texdistill.stages import evaluate as evaluate_stage
from texdistill.stages.evaluate import EVAL_FILE

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def tiny(tiny_data):
    dataset = load_dataset("fashion-mnist", data_dir=str(tiny_data), res=SIDE)
    return dataset, PixelSpace.fit(dataset), ModelSpec(1, 10, SIDE, SIDE, width=8, depth=2)


def _accuracy(tiny, synthetic, lr=0.01, epochs=8, seed=0) -> float:
    dataset, space, spec = tiny
    cfg = EvalConfig(out="unused", eval_epochs=epochs, dsa=False)
    model = train_on_synthetic(synthetic, spec, lr, cfg, seed, torch.device("cpu"))
    return top1_accuracy(model, dataset.test_images, dataset.test_labels, space, torch.device("cpu"))


def test_real_training_images_score_far_above_chance_and_noise_near_chance(tiny):
    dataset, space, _ = tiny
    real = ImageSet(space.encode(dataset.train_images), dataset.train_labels, 10)
    noise = ImageSet(torch.randn(100, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)),
                     torch.arange(10).repeat_interleave(10), 10)
    on_real = [_accuracy(tiny, real, lr=0.05, epochs=20, seed=s) for s in range(3)]
    on_noise = [_accuracy(tiny, noise, epochs=30, seed=s) for s in range(3)]
    # 1000 real 8-px images, 20 epochs: what a width-8 ConvNet reaches on the full tiny training set
    assert statistics.mean(on_real) > 0.6
    assert abs(statistics.mean(on_noise) - 0.1) < 0.06  # 10 classes: chance


def test_a_canvas_baselines_spend_the_same_pixels(demo_data, demo_space):
    g = torch.Generator().manual_seed(0)
    for canvas_size, per_class in ((2.0, 4), (3.0, 9), (1.5, 2)):  # 42² px ≈ 2.25 crops of 28² px: rounded
        canvas = build_synthetic(True, "noise", demo_data, demo_space, g, canvas_size=canvas_size)
        baselines = canvas.baselines(demo_data, demo_space, g)
        assert list(baselines) == ["random real tiled", "random real collage", f"random real ×{per_class} (same pixels)"]
        images = baselines[f"random real ×{per_class} (same pixels)"]
        assert isinstance(images, ImageSet) and images.pixels.shape == (10 * per_class, 1, 28, 28)
        assert abs(per_class * 28 * 28 - canvas.pixels[0, 0].numel()) <= 28 * 28 / 2  # the nearest whole count
        for name in ("random real tiled", "random real collage"):
            assert isinstance(baselines[name], TextureCanvas) and baselines[name].pixels.shape == canvas.pixels.shape
        assert canvas.epoch_size == 10 * per_class  # an evaluation epoch: as many crops as the canvas holds


def test_each_set_trains_with_its_lr_and_the_lr_drops_tenfold_at_half(tiny, monkeypatch):
    dataset, space, spec = tiny
    canvas = build_synthetic(True, "real", dataset, space, torch.Generator().manual_seed(0), canvas_samples=2)
    meta = {"syn_lr": 0.0123, "expert_lr": 0.01}
    sets = evaluate_stage._sets(EvalConfig(out="unused"), canvas, meta, dataset, space)
    assert {name: lr for name, (_, lr) in sets.items()} == {
        "distilled": 0.0123, "random real tiled": 0.01, "random real collage": 0.01, "random real ×4 (same pixels)": 0.01}
    assert evaluate_stage._sets(EvalConfig(out="unused", eval_lr=0.3), canvas, meta, dataset, space)["distilled"][1] == 0.3
    assert list(evaluate_stage._sets(EvalConfig(out="unused", baselines=False), canvas, meta, dataset, space)) == ["distilled"]

    seen = []

    def recording_step(model, optimizer, x, targets, dsa, seed):
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"],
                     optimizer.param_groups[0]["weight_decay"], tuple(x.shape)))
        return 0.0, 0

    monkeypatch.setattr(evaluate, "sgd_step", recording_step)
    train_on_synthetic(canvas, spec, 0.0123, EvalConfig(out="unused", eval_epochs=4, eval_batch=20), 0,
                       torch.device("cpu"))
    # 4 crops per canvas per epoch (its pixel budget), 20 per batch → 2 batches of 2 crops × 10 classes
    assert [s[3] for s in seen] == [(20, 1, SIDE, SIDE)] * 8
    assert [s[0] for s in seen] == pytest.approx([0.0123] * 4 + [0.00123] * 4)
    assert {s[1:3] for s in seen} == {(0.9, 5e-4)}


def test_soft_labels_are_trained_on_as_probabilities(tiny, monkeypatch):
    dataset, space, spec = tiny
    images = build_synthetic(False, "real", dataset, space, torch.Generator().manual_seed(0), ipc=2)
    logits = torch.randn(20, 10, generator=torch.Generator().manual_seed(1))
    images.use_soft_labels(logits)
    seen = []
    monkeypatch.setattr(evaluate, "sgd_step", lambda model, optimizer, x, targets, dsa, seed: seen.append(targets)
                        or (0.0, 0))
    train_on_synthetic(images, spec, 0.01, EvalConfig(out="unused", eval_epochs=1), 0, torch.device("cpu"))
    assert len(seen) == 1 and torch.allclose(seen[0], torch.softmax(logits, dim=1))


def test_seam_report_on_constructed_canvases():
    # a horizontal ramp 0 → 1 wraps with a step of 1 against interior steps of 1/15: ratio exactly
    # ((w − 1)·h + (h − 1)·w) / (h + w) = 15 (rows contribute no difference anywhere)
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).repeat(2, 1, 16, 1)
    # vertical stripes of period 2 on an even width: the seam is one more stripe edge, ratio exactly 1, z 0
    stripes = (0.25 + 0.5 * (torch.arange(16) % 2)).view(1, 1, 1, 16).repeat(2, 1, 16, 1)
    space = PixelSpace([0.0], [1.0])
    report = seam_report({"ramp": [TextureCanvas(ramp, torch.arange(2), 2, (8, 8))],
                          "stripes": [TextureCanvas(stripes, torch.arange(2), 2, (8, 8))]}, space, ["a", "b"])
    assert report["ramp"]["ratio"] == pytest.approx(15.0) and report["ramp"]["classes"]["b"]["ratio"] == pytest.approx(15)
    assert report["ramp"]["z"] > 100
    assert report["stripes"]["ratio"] == pytest.approx(1.0) and report["stripes"]["z"] == pytest.approx(0.0)


def test_sample_std_and_how_it_is_shown():
    two = summary([0.5, 0.7], lr=0.01)
    assert two["std"] == pytest.approx(0.1414213, rel=1e-6) and two["models"] == 2  # n − 1, not n (0.1)
    assert plus_minus(two) == "60.0 ± 14.1 (n = 2)"
    one = summary([0.5], lr=0.01)
    assert one["std"] is None and plus_minus(one) == "50.0 (n = 1)"


def test_wearability_lands_in_eval_json_for_every_set(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main([*with_option(evaluate_cli(), "--wear-crops", "7"), "--out", str(run), "--force"]) == 0
    results = json.loads((run / EVAL_FILE).read_text())
    wear = results["wearability"]
    judges = {f"{name}/{seed}" for name in ("vit-tiny", "lenet") for seed in (1, 2)}  # two seeds each
    assert set(wear["judges"]) == judges and wear["left_out"] == []
    assert {v["architecture"] for v in wear["judges"].values()} == {"vit-tiny", "lenet"}
    assert set(wear["sets"]) == set(results["sets"]) == {"distilled", "random real ×1"}  # an image-mode run
    for w in wear["sets"].values():
        assert 0 <= w["min"] <= w["mean"] <= 1 and set(w["judges"]) == judges and w["judges_n"] == 4
        assert w["std"] >= 0 and set(w["architectures"]) == {"vit-tiny", "lenet"}
        assert w["samples"] == 10  # an image set is judged image by image (--wear-crops is for canvases)
    assert list((run / "cache" / "judges").glob("*.safetensors"))  # trained once, cached beside the data


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_each_round_of_models_is_saved_before_the_next(monkeypatch, rank):
    """2 ranks, 5 models: rounds {0,1}, {2,3}, {4}; rank 0 saves after every round (a killed job keeps them),
    rank 1 never writes; every rank ends with all accuracies in model order."""
    from texdistill import distributed

    trained: list[int] = []
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    monkeypatch.setattr(evaluate, "train_on_synthetic", lambda *args: args[4])  # the model is its seed
    monkeypatch.setattr(evaluate, "top1_accuracy", lambda seed, *args: (trained.append(seed), seed / 1000)[1])
    rounds = iter([[0, 1], [2, 3], [4]])

    def all_gather_objects(mine: dict) -> list[dict]:  # what the other rank trained in this round, rank order
        theirs = {i: evaluate.model_seed(cfg, i) / 1000 for i in next(rounds) if i % 2 != rank}
        return [mine, theirs] if rank == 0 else [theirs, mine]

    monkeypatch.setattr(distributed, "all_gather_objects", all_gather_objects)
    cfg = EvalConfig(num_models=5, eval_epochs=1)
    saved: list[list[float]] = []
    accuracies = evaluate.evaluate_set("distilled", lambda g: None, None, 0.01,
                                       SimpleNamespace(split=lambda name: (None, None)), None, cfg, None, [],
                                       lambda accs: saved.append(list(accs)))
    expected = [evaluate.model_seed(cfg, i) / 1000 for i in range(5)]
    assert accuracies == expected
    assert trained == [evaluate.model_seed(cfg, i) for i in range(rank, 5, 2)]
    assert saved == ([expected[:2], expected[:4], expected] if rank == 0 else [])


def test_judges_of_a_family_the_distillation_used_are_left_out(tmp_path):
    from texdistill.method.judges import left_out

    cfg = EvalConfig(out=str(tmp_path / "run"), judges="convnet-bn,vit-tiny,lenet,resnet10")
    assert left_out(cfg, {"convnet"}) == ["convnet-bn"]  # same family as the experts
    assert left_out(cfg, {"resnet18"}) == ["resnet10"] and left_out(cfg, set()) == []
