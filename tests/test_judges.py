"""Independent judges and wearability: exact values on constructed sets, judges trained once and cached."""

import logging

import pytest
import torch

from scripts import benchmark_script
from texdistill.config import CommonConfig
from texdistill.data import ImageDataset, PixelSpace
from texdistill.method import judges as judges_module
from texdistill.method import netcache
from texdistill.method.judges import (
    Judge,
    judged,
    load_judges,
    new_network,
    recognition,
    resized_crops_erased,
    trained_on_real_data,
    wearability,
)
from texdistill.method.recognition import translate
from texdistill.method.synthetic import ImageSet, TextureCanvas

K = 3


def brightness_classifier(images: torch.Tensor) -> torch.Tensor:
    """A rule standing in for a judge: class = the image's mean brightness in thirds of 0…255."""
    return (images.float().mean(dim=(1, 2, 3)) / 256 * K).long().clamp(0, K - 1)


def identity_space() -> PixelSpace:
    return PixelSpace([0.0], [1.0])  # pixels are display values in [0, 1]


def test_recognition_counts_per_class_and_averages_classes():
    images = torch.tensor([10, 10, 100, 250, 250, 250], dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
    labels = torch.tensor([0, 1, 1, 2, 2, 0])
    result = recognition(images, labels, brightness_classifier, K)
    assert result["classes"] == [0.5, 0.5, 1.0] and result["mean"] == pytest.approx(2 / 3)


def test_wearability_of_canvases_counts_every_wrap_around_crop():
    # canvases dark/mid/bright by class; canvas 0 has a white stripe in columns 14 and 15. A 4×4 crop that holds
    # both stripe columns has mean 127.5 and is misread as class 1, one that holds one column (63.75) is not:
    # crops at dx ∈ {12, 13, 14} are misread — two of them cross the wrap-around seam
    canvases = torch.tensor([0.0, 0.5, 0.9]).view(K, 1, 1, 1).repeat(1, 1, 16, 16)
    canvases[0, :, :, 14:] = 1.0
    synthetic = TextureCanvas(canvases, torch.arange(K), K, crop=(4, 4))
    judge = Judge("rule", torch.nn.Identity(), torch.zeros(1), torch.ones(1), 1.0)
    judge.classify = brightness_classifier
    wear = wearability(synthetic, identity_space(), [judge], crops=400, seed=3, class_names=["a", "b", "c"])
    images, labels = synthetic.displayed_samples(identity_space(), 400, 3)
    assert images.shape == (3 * 400, 1, 4, 4) and images.dtype == torch.uint8
    assert labels.tolist() == [0] * 400 + [1] * 400 + [2] * 400
    dx = synthetic.draw(3, per_class=400).dx[:400]
    expected0 = float((~torch.isin(dx, torch.tensor([12, 13, 14]))).float().mean())
    assert 0.7 < expected0 < 0.9
    assert wear["classes"] == {"a": pytest.approx(expected0), "b": 1.0, "c": 1.0}
    assert wear["judges"]["rule"]["mean"] == wear["mean"] == pytest.approx((expected0 + 2) / 3)
    assert wear["min"] == pytest.approx(expected0) and wear["samples"] == 1200


def test_wearability_of_an_image_set_reads_each_image_once():
    pixels = torch.tensor([0.1, 0.9, 0.5, 0.5, 0.9, 0.9]).view(-1, 1, 1, 1).repeat(1, 1, 4, 4)
    synthetic = ImageSet(pixels, torch.arange(K).repeat_interleave(2), K)
    images, labels = synthetic.displayed_samples(identity_space(), crops=50, seed=0)
    assert len(images) == 6 and labels.tolist() == [0, 0, 1, 1, 2, 2]
    judge = Judge("rule", torch.nn.Identity(), torch.zeros(1), torch.ones(1), 1.0)
    judge.classify = brightness_classifier
    wear = wearability(synthetic, identity_space(), [judge], crops=50, seed=0, class_names=["a", "b", "c"])
    assert list(wear["classes"].values()) == [0.5, 1.0, 1.0]


def test_translate_shifts_with_zero_fill_and_flips():
    image = torch.arange(1, 26, dtype=torch.uint8).view(1, 1, 5, 5).repeat(64, 1, 1, 1)
    out = translate(image, 2, torch.Generator().manual_seed(0))
    assert out.shape == image.shape
    for shifted in out[:, 0]:
        nonzero = shifted[shifted > 0]
        # every output is a shifted (maybe flipped) window of the image: its values are the image's, at most once
        assert len(nonzero.unique()) == len(nonzero) and set(nonzero.tolist()) <= set(range(1, 26))
        assert len(nonzero) >= 9  # at most 2 rows and 2 columns move out
    assert len({tuple(o.flatten().tolist()) for o in out}) > 10  # the shifts differ between images


def _tiny_dataset(n: int = 60) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % K
    # class k: a bright k-th third of the image, so even a 1-epoch judge has something to learn
    images = torch.randint(0, 40, (n, 1, 6, 6), generator=g, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):
        images[i, :, 2 * k:2 * k + 2] = 250
    return ImageDataset("tiny", images, labels, images[:12], labels[:12], ["a", "b", "c"])


def test_judges_are_trained_once_and_then_read_from_the_cache(tmp_path, monkeypatch, caplog):
    dataset = _tiny_dataset()
    identity = {"reader": "tiny", "res": 6}
    with caplog.at_level(logging.INFO, logger="texdistill"):
        first = load_judges(("convnet-bn", "resnet10"), dataset, identity, tmp_path, 2, torch.device("cpu"))
    assert [j.name for j in first] == ["convnet-bn", "resnet10"] and len(list(tmp_path.glob("*.safetensors"))) == 2
    assert "convnet-bn (seed 104729): trained" in caplog.text

    def no_training(*args, **kwargs):
        raise AssertionError("a cached judge was trained again")

    monkeypatch.setattr(judges_module, "train_judge", no_training)
    again = load_judges(("convnet-bn", "resnet10"), dataset, identity, tmp_path, 2, torch.device("cpu"))
    for a, b in zip(first, again):
        assert a.test_accuracy == b.test_accuracy
        assert torch.equal(a.classify(dataset.test_images), b.classify(dataset.test_images))
    # another recipe or another dataset identity is another judge
    monkeypatch.undo()
    load_judges(("convnet-bn",), dataset, {**identity, "res": 7}, tmp_path, 2, torch.device("cpu"))
    assert len(list(tmp_path.glob("*.safetensors"))) == 3


def test_judges_of_one_architecture_and_several_seeds_give_a_spread():
    images = torch.tensor([10, 100, 250], dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
    labels = torch.tensor([0, 1, 2])
    right, wrong = (Judge("rule", torch.nn.Identity(), torch.zeros(1), torch.ones(1), 1.0, seed) for seed in (1, 2))
    right.classify = brightness_classifier
    wrong.classify = lambda x: torch.zeros(len(x), dtype=torch.long)  # only class 0 right: mean 1/3
    other = Judge("other", torch.nn.Identity(), torch.zeros(1), torch.ones(1), 1.0)
    other.classify = brightness_classifier
    result = judged(images, labels, [right, wrong, other], ["a", "b", "c"])
    assert list(result["judges"]) == ["rule/1", "rule/2", "other"] and result["judges_n"] == 3
    assert result["mean"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert result["std"] == pytest.approx(torch.tensor([1, 1 / 3, 1]).std().item())  # sample std (n − 1)
    assert result["architectures"]["rule"] == {"mean": pytest.approx(2 / 3), "std": pytest.approx(2 ** 0.5 / 3),
                                               "n": 2}
    assert result["architectures"]["other"] == {"mean": 1.0, "std": 0.0, "n": 1}


def test_the_judges_augmentation_keeps_the_shape_and_follows_its_generator():
    images = torch.rand(16, 3, 12, 12)
    a = resized_crops_erased(images, torch.Generator().manual_seed(5))
    b = resized_crops_erased(images, torch.Generator().manual_seed(5))
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, images) and (a == 0).any()  # cropped or flipped, and some rectangles erased


def test_the_user_cache_is_where_model_hubs_keep_theirs(monkeypatch, tmp_path):
    for name in ("TEXDISTILL_CACHE", "XDG_CACHE_HOME", "TEXDISTILL_NO_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert netcache.user_cache_dir() == tmp_path / "home" / ".cache" / "texdistill" / "networks"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert netcache.user_cache_dir() == tmp_path / "xdg" / "texdistill" / "networks"
    monkeypatch.setenv("TEXDISTILL_CACHE", str(tmp_path / "mine"))
    assert netcache.user_cache_dir() == tmp_path / "mine" / "networks"
    monkeypatch.setenv("TEXDISTILL_NO_CACHE", "1")
    assert netcache.user_cache_dir() is None


def test_the_session_never_writes_into_the_real_home_cache(user_cache):
    assert netcache.user_cache_dir() == user_cache / "networks"


def test_a_second_run_folder_reuses_the_networks_of_the_first(demo_data, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TEXDISTILL_CACHE", str(tmp_path / "user"))
    calls = []

    def fake_training(name, dataset, epochs, device, seed):  # an untrained network stands in for a trained one
        calls.append((name, epochs, seed))
        torch.manual_seed(seed)
        return new_network(name, dataset, device)

    def networks(out: str, epochs: int = 1, **options) -> list[Judge]:
        cfg = CommonConfig(out=str(tmp_path / out), **options)
        return trained_on_real_data(cfg, demo_data, ("lenet", "lenet"), epochs, torch.device("cpu"), (1, 2),
                                    "test-recipe", fake_training)

    first = networks("run1")
    assert calls == [("lenet", 1, 1), ("lenet", 1, 2)]
    shared = sorted((tmp_path / "user" / "networks").glob("*.safetensors"))
    assert len(shared) == 2 and not list((tmp_path / "user" / "networks").glob(".*"))  # no temp files left
    with caplog.at_level(logging.INFO, logger="texdistill"):
        again = networks("run2")
    assert len(calls) == 2 and "reused the cached network" in caplog.text  # nothing trained
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    # the run folder keeps a copy of what it used
    assert sorted(p.name for p in (tmp_path / "run2" / "cache" / "judges").glob("*.safetensors")) == \
        [p.name for p in shared]
    networks("run3", epochs=2)  # another key: trained anew
    assert len(calls) == 4
    # a damaged entry: a warning, trained again and replaced by a whole file
    shared[0].write_bytes(shared[0].read_bytes()[:100])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="texdistill"):
        networks("run4")
    assert len(calls) == 5 and "unreadable" in caplog.text
    networks("run5")
    assert len(calls) == 5
    # --no-cache: the run trains its own and the user cache is not touched
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "user" / "networks").iterdir())
    networks("run6", cache=False)
    assert len(calls) == 7
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "user" / "networks").iterdir()) == before


def test_judge_confusion_gives_each_class_its_wearability_and_what_else_it_reads_as(tiny_run, tmp_path, capsys,
                                                                                    monkeypatch, single_thread):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    confusion = benchmark_script("judge_confusion")
    monkeypatch.setattr("sys.argv", ["judge_confusion.py", str(run)])
    confusion.main()
    lines = capsys.readouterr().out.splitlines()
    judged = json.loads((run / "eval.json").read_text())["wearability"]["sets"]["distilled"]["judges"]
    starts = [i for i, line in enumerate(lines) if "test accuracy" in line]
    blocks = {lines[i].split()[0]: lines[i + 1:i + 11] for i in starts}
    assert sorted(blocks) == sorted(judged)
    for name, block in blocks.items():
        for row in block:  # "  class  a 0.50, b 0.30, c 0.20": the class's own share is its wearability
            cls, answers = row.split()[0], dict(a.rsplit(" ", 1) for a in row.split(None, 1)[1].split(", "))
            assert len(answers) == 3
            own = judged[name]["classes"][cls]
            if cls in answers:
                assert float(answers[cls]) == pytest.approx(own, abs=0.006)
            else:  # not among the three most frequent answers
                assert own <= min(map(float, answers.values())) + 0.006


def test_answer_shares_count_each_class_row():
    shares = benchmark_script("judge_confusion").answer_shares(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1]), 3)
    assert shares.tolist() == [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]


def test_a_revised_architecture_gets_new_cache_keys_and_the_others_keep_theirs(monkeypatch):
    from texdistill.method import architectures
    from texdistill.method.judges import judge_key
    identity = {"reader": "tiny", "res": 6}
    before = {name: judge_key(identity, name, 10) for name in ("vit-tiny", "lenet")}
    monkeypatch.setitem(architectures.REVISION, "vit-tiny", architectures.REVISION["vit-tiny"] + 1)
    monkeypatch.setitem(architectures.REVISION, "lenet", 2)
    after = {name: judge_key(identity, name, 10) for name in ("vit-tiny", "lenet")}
    assert after["vit-tiny"] != before["vit-tiny"] and after["lenet"] != before["lenet"]
    monkeypatch.delitem(architectures.REVISION, "lenet")
    assert judge_key(identity, "lenet", 10) == before["lenet"]  # an architecture never revised: the key of old
