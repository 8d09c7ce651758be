
import pytest
import torch

from texdistill.cli import main
from texdistill.config import ExpertsConfig
from texdistill.errors import CheckpointError, ConfigError
from texdistill.method import experts
from texdistill.method.experts import ExpertBank, expert_path
from texdistill.method.judges import took_part
from texdistill.method.models import FlatParams, ModelSpec
from texdistill.method.training import top1_accuracy
from texdistill.stages.experts import ExpertTrainer
from texdistill.storage import load_tensors


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_data):
    cfg = ExpertsConfig(out=str(tmp_path_factory.mktemp("run")), width=32, num_experts=1, epochs=2)
    trainer = ExpertTrainer(cfg, demo_data)
    trajectory = trainer.train_one(0)
    return cfg, trainer, trajectory


def test_expert_learns_well_above_chance(trained):
    _, _, _ = trained
    meta = load_tensors(expert_path(trained[0].run_dir / "experts", 0))[1]
    assert meta["test_acc"] > 0.5  # chance is 0.1


def test_trajectory_reloads_identically_without_pickle(trained, demo_data):
    cfg, trainer, trajectory = trained
    path = expert_path(cfg.run_dir / "experts", 0)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors JSON header, not a pickle
    tensors, meta = load_tensors(path)
    assert torch.equal(tensors["trajectory"], trajectory) and trajectory.shape[0] == cfg.epochs + 1
    assert meta["model"]["width"] == 32 and meta["lr"] == 0.01 and meta["dataset"] == "fashion-demo"
    # the last row is the trained network: rebuilding it reproduces the recorded accuracy
    model = trainer.spec.build()
    FlatParams(model).set(trajectory[-1])
    acc = top1_accuracy(model, demo_data.test_images, demo_data.test_labels, trainer.space, torch.device("cpu"))
    assert acc == pytest.approx(meta["test_acc"])
    bank = ExpertBank.open(cfg.run_dir / "experts")
    start, end = bank.epochs(0, 0, 2)
    assert torch.equal(start, trajectory[0]) and torch.equal(end, trajectory[2])


def test_rerun_skips_finished_experts(trained, demo_data, monkeypatch):
    cfg, trainer, _ = trained
    path = expert_path(cfg.run_dir / "experts", 0)
    before = path.read_bytes()
    monkeypatch.setattr(ExpertTrainer, "train_one", lambda self, i: pytest.fail("retrained a finished expert"))
    ExpertTrainer(cfg, demo_data).run()
    assert path.read_bytes() == before


def small_set(demo_data):
    return demo_data.__class__(demo_data.name, demo_data.train_images[::20], demo_data.train_labels[::20],
                               demo_data.test_images[:100], demo_data.test_labels[:100], demo_data.class_names)


def test_a_second_run_folder_copies_its_experts_from_the_user_cache(tmp_path, demo_data, monkeypatch):
    monkeypatch.setenv("TEXDISTILL_CACHE", str(tmp_path / "user"))
    small, options = small_set(demo_data), {"width": 8, "num_experts": 2, "epochs": 1}
    ExpertTrainer(ExpertsConfig(out=str(tmp_path / "a"), **options), small).run()
    cached = sorted((tmp_path / "user" / "networks").glob("fashion-demo-28px-expert-*.safetensors"))
    assert len(cached) == 2  # one entry per index

    trained = []
    original = ExpertTrainer.train_one
    monkeypatch.setattr(ExpertTrainer, "train_one", lambda self, i: trained.append(i) or original(self, i))
    ExpertTrainer(ExpertsConfig(out=str(tmp_path / "b"), **options), small).run()
    assert trained == []  # copied, not trained
    for i in range(2):
        assert expert_path(tmp_path / "b" / "experts", i).read_bytes() == expert_path(tmp_path / "a" / "experts",
                                                                                      i).read_bytes()
    assert '"reused"' in (tmp_path / "b" / "log.jsonl").read_text()

    # another option of expert training is another entry; --no-cache neither reads nor writes the cache
    ExpertTrainer(ExpertsConfig(out=str(tmp_path / "c"), lr_teacher=0.02, **options), small).run()
    assert trained == [0, 1] and len(list((tmp_path / "user" / "networks").glob("*-expert-*"))) == 4
    ExpertTrainer(ExpertsConfig(out=str(tmp_path / "d"), cache=False, **options), small).run()
    assert trained == [0, 1, 0, 1] and len(list((tmp_path / "user" / "networks").glob("*-expert-*"))) == 4

    # an unreadable entry is trained again (with a warning) and replaced
    trainer = ExpertTrainer(ExpertsConfig(out=str(tmp_path / "e"), **options), small)
    trainer.cached_path(0).write_bytes(b"damaged")
    trainer.run()
    assert trained == [0, 1, 0, 1, 0]
    assert trainer.cached_path(0).read_bytes() == expert_path(tmp_path / "e" / "experts", 0).read_bytes()


def test_partial_expert_resumes_to_the_same_trajectory(tmp_path, demo_data):
    small = small_set(demo_data)
    cfg = ExpertsConfig(out=str(tmp_path / "a"), width=8, num_experts=1, epochs=3, momentum_teacher=0.5)
    full = ExpertTrainer(cfg, small).train_one(0)

    cfg_b = ExpertsConfig(out=str(tmp_path / "b"), width=8, num_experts=1, epochs=3, momentum_teacher=0.5)
    trainer = ExpertTrainer(cfg_b, small)
    trainer.dir.mkdir(parents=True)
    calls = {"n": 0}
    original = ExpertTrainer._save_partial

    def save_then_die(self, *args):
        original(self, *args)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # killed right after epoch 1 was saved

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExpertTrainer, "_save_partial", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            trainer.train_one(0)
    assert expert_path(trainer.dir, 0).with_suffix(".partial.safetensors").exists()
    resumed = ExpertTrainer(cfg_b, small).train_one(0)
    assert torch.equal(resumed, full)
    assert not expert_path(trainer.dir, 0).with_suffix(".partial.safetensors").exists()


def test_corrupt_trajectory_is_a_clear_error(tmp_path):
    (tmp_path / "expert_000.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="is damaged"):
        ExpertBank.open(tmp_path)
    with pytest.raises(CheckpointError, match="no expert trajectories"):
        ExpertBank.open(tmp_path / "empty")


def test_wrap_shift_experts_train_on_rolled_images(tmp_path, demo_data, monkeypatch):
    seen = []
    original = experts.sgd_step

    def spy(model, optimizer, x, *rest):
        seen.append(x)
        return original(model, optimizer, x, *rest)

    monkeypatch.setattr(experts, "sgd_step", spy)
    runs = {}
    for shift in (0.0, 1.0):
        cfg = ExpertsConfig(out=str(tmp_path / str(shift)), width=8, num_experts=1, epochs=1, wrap_shift=shift)
        seen.clear()
        runs[shift] = (ExpertTrainer(cfg, demo_data).train_one(0), seen[0])
    (plain, plain_batch), (rolled, rolled_batch) = runs[0.0], runs[1.0]
    assert torch.equal(plain[0], rolled[0]) and not torch.equal(plain[-1], rolled[-1])  # same init, other data
    # the first batch holds the same images, each rolled with wrap-around: same pixels, other places
    assert torch.allclose(plain_batch.sum((1, 2, 3)), rolled_batch.sum((1, 2, 3)), atol=1e-3)
    assert not torch.equal(plain_batch, rolled_batch)
    meta = load_tensors(expert_path(tmp_path / "1.0" / "experts", 0))[1]
    assert meta["config"]["wrap_shift"] == 1.0


def test_experts_stored_with_a_head_read_as_today_s_convnet_unless_it_was_the_retired_gap(tmp_path, demo_data):
    cfg = ExpertsConfig(out=str(tmp_path), width=8, num_experts=1, epochs=1)
    ExpertTrainer(cfg, demo_data).train_one(0)
    bank = ExpertBank.open(tmp_path / "experts")
    assert "head" not in bank.metadata["model"] and took_part(bank.metadata) == {"convnet"}
    assert ModelSpec.from_dict({**bank.metadata["model"], "head": "flat"}) == bank.spec  # stored before retirement
    with pytest.raises(ConfigError, match="'gap' classifier head, retired"):
        ModelSpec.from_dict({**bank.metadata["model"], "head": "gap"})
    with pytest.raises(SystemExit):
        main(["experts", "--out", str(tmp_path / "bad"), "--head", "gap"])


def test_bfloat16_experts_run_the_network_in_bfloat16_and_keep_float32_trajectories(tmp_path, demo_data, monkeypatch):
    conv_dtypes = []
    original = experts.sgd_step

    def spy(model, *args):
        hook = model.features[0].register_forward_hook(lambda m, i, out: conv_dtypes.append(out.dtype))
        try:
            return original(model, *args)
        finally:
            hook.remove()

    monkeypatch.setattr(experts, "sgd_step", spy)
    runs = {}
    for precision in ("float32", "bfloat16"):
        cfg = ExpertsConfig(out=str(tmp_path / precision), width=16, num_experts=1, epochs=1, precision=precision)
        conv_dtypes.clear()
        runs[precision] = ExpertTrainer(cfg, demo_data).train_one(0)
        assert set(conv_dtypes) == {torch.float32 if precision == "float32" else torch.bfloat16}
    plain, low = runs["float32"], runs["bfloat16"]
    assert low.dtype == torch.float32 and torch.equal(plain[0], low[0])  # same init
    assert not torch.equal(plain[-1], low[-1])
    # the same training, rounded differently: both move the same way, to the same distance
    step_plain, step_low = plain[-1] - plain[0], low[-1] - low[0]
    assert torch.nn.functional.cosine_similarity(step_plain, step_low, dim=0) > 0.9
    meta = load_tensors(expert_path(tmp_path / "bfloat16" / "experts", 0))[1]
    assert meta["precision"] == "bfloat16" and meta["test_acc"] > 0.5
    with pytest.raises(SystemExit):
        main(["experts", "--out", str(tmp_path / "bad"), "--precision", "float16"])


def test_an_interrupted_expert_resumes_its_own_partial_even_when_the_cache_has_it(tmp_path, demo_data, monkeypatch):
    monkeypatch.setenv("TEXDISTILL_CACHE", str(tmp_path / "user"))
    small, options = small_set(demo_data), {"width": 8, "num_experts": 1, "epochs": 2}
    trainer = ExpertTrainer(ExpertsConfig(out=str(tmp_path / "a"), **options), small)
    trainer.dir.mkdir(parents=True)
    original_save, original_train = ExpertTrainer._save_partial, ExpertTrainer.train_one

    def save_then_die(self, *args):
        original_save(self, *args)
        raise KeyboardInterrupt  # killed right after epoch 1 was saved

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExpertTrainer, "_save_partial", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
    ExpertTrainer(ExpertsConfig(out=str(tmp_path / "b"), **options), small).run()  # now the cache has it
    trained = []
    monkeypatch.setattr(ExpertTrainer, "train_one", lambda self, i: trained.append(i) or original_train(self, i))
    ExpertTrainer(ExpertsConfig(out=str(tmp_path / "a"), **options), small).run()
    assert trained == [0]  # resumed from its own partial, not replaced by the cached copy
    assert torch.equal(load_tensors(expert_path(tmp_path / "a" / "experts", 0))[0]["trajectory"],
                       load_tensors(expert_path(tmp_path / "b" / "experts", 0))[0]["trajectory"])
