"""torchrun on CPU (gloo), 2 processes on localhost: results equal those of one process.

The launches are slow (-m slow): each starts 1 to 3 fresh interpreters. What runs in-process stays in the default run
here (the process group's backend and timeout, each rank's device, exact float32) and in test_evaluate
(test_under_torchrun_each_round_of_models_is_saved_before_the_next, ranks emulated)."""

import json
import os
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from texdistill.storage import read_jsonl

TINY = ["--width", "8", "--seed", "3"]


# gloo can abort a rank as its process group is torn down after the work (a related exit abort: pytorch PR 179291);
# seen in full-suite runs (once in four this session), not in isolation (six of six passed): such a launch runs again
GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def launch(args, nproc: int = 1, timeout: int = 300):
    """Run python ARGS as one process or under torchrun with `nproc` processes (1 thread each)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                if nproc > 1 else [sys.executable])
    for attempt in range(2):
        result = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode == 0 or GLOO_TEARDOWN_ABORT not in result.stderr or attempt:
            break
        warnings.warn(f"gloo aborted a rank at teardown; launching again (it resumes): {' '.join(args)}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def texdistill(args, nproc: int = 1):
    return launch(["-m", "texdistill", *args], nproc)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    experts = ["experts", *TINY, "--num-experts", "3", "--epochs", "2"]
    texdistill([*experts, "--out", str(root / "one")])
    texdistill([*experts, "--out", str(root / "two")], nproc=2)
    return root


@pytest.mark.slow
def test_experts_from_two_ranks_equal_one_process(runs):
    for index in range(3):
        one = load_file(runs / "one" / "experts" / f"expert_{index:03d}.safetensors")["trajectory"]
        two = load_file(runs / "two" / "experts" / f"expert_{index:03d}.safetensors")["trajectory"]
        assert torch.equal(one, two), f"expert {index} differs"


@pytest.mark.slow
def test_evaluation_gathers_all_models(runs):
    distill = ["distill", *TINY, "--texture", "--iterations", "2", "--syn-steps", "2", "--expert-epochs", "1",
               "--max-start-epoch", "1"]
    evaluate = ["evaluate", *TINY, "--num-models", "3", "--eval-epochs", "4", "--no-baselines", "--judges", "lenet",
                "--judge-epochs", "1"]
    texdistill([*distill, "--out", str(runs / "one")])
    texdistill([*evaluate, "--out", str(runs / "one")])
    (runs / "two" / "synthetic.safetensors").write_bytes((runs / "one" / "synthetic.safetensors").read_bytes())
    texdistill([*evaluate, "--out", str(runs / "two")], nproc=2)
    one = json.loads((runs / "one" / "eval.json").read_text())["sets"]["distilled"]
    two = json.loads((runs / "two" / "eval.json").read_text())["sets"]["distilled"]
    assert two["models"] == 3 and two["accuracies"] == one["accuracies"]


@pytest.mark.slow
def test_data_parallel_gradient_equals_single_process(tmp_path):
    from dist_gradient import gradients

    launch([str(Path(__file__).parent / "dist_gradient.py"), str(tmp_path / "two.safetensors")], nproc=2)
    two = load_file(tmp_path / "two.safetensors")
    one = gradients()
    assert set(one) == set(two)
    for key, value in one.items():
        rel = float((two[key] - value).norm() / value.norm())
        assert rel <= 1e-5, f"{key}: relative difference {rel:.2e}"


@pytest.mark.slow
def test_distillation_on_two_ranks_follows_the_single_process_run(runs):
    distill = ["distill", *TINY, "--texture", "--iterations", "3", "--syn-steps", "3", "--expert-epochs", "1",
               "--max-start-epoch", "2", "--canvas-samples", "2", "--snapshot-every", "3", "--log-every", "1"]
    texdistill([*distill, "--out", str(runs / "one-dp")] + ["--experts-dir", str(runs / "one" / "experts")])
    texdistill([*distill, "--out", str(runs / "two-dp")] + ["--experts-dir", str(runs / "one" / "experts")], nproc=2)
    one = load_file(runs / "one-dp" / "synthetic.safetensors")
    two = load_file(runs / "two-dp" / "synthetic.safetensors")
    torch.testing.assert_close(two["pixels"], one["pixels"], rtol=1e-4, atol=1e-4)
    losses = [[r["loss"] for r in read_jsonl(runs / run / "log.jsonl", "distill") if "loss" in r]
              for run in ("one-dp", "two-dp")]
    assert len(losses[0]) == 3 and losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_the_process_group_gets_a_long_timeout_and_its_device(monkeypatch):
    import torch.distributed as dist

    from texdistill import distributed
    from texdistill.errors import ConfigError

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    distributed.setup(torch.device("cpu"))
    # NCCL's default (10 min) kills a rank that waits while rank 0 trains a whole expert
    assert calls[-1] == {"backend": "gloo", "timeout": timedelta(minutes=180)}
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "600")
    distributed.setup(torch.device("cuda", 1))
    assert calls[-1] == {"backend": "nccl", "timeout": timedelta(minutes=600), "device_id": torch.device("cuda", 1)}
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="TEXDISTILL_DIST_TIMEOUT_MIN must be a number of minutes"):
        distributed.setup(torch.device("cpu"))


@pytest.mark.parametrize("visible, local_rank, expected", [(4, "3", 3), (1, "3", 0), (2, None, 0)])
def test_each_rank_takes_its_gpu_or_the_only_one_it_sees(monkeypatch, visible, local_rank, expected):
    from texdistill.config import DistillConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert DistillConfig().torch_device() == torch.device("cuda", expected)


def test_distillation_computes_in_exact_float32_with_deterministic_kernels(tiny_experts, tmp_path):
    from tinyrun import SIDE, _data_dir

    from texdistill.config import DistillConfig
    from texdistill.hardware import describe
    from texdistill.method.distill import Distiller

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as a GPU process may start
    try:
        Distiller(DistillConfig(out=str(tmp_path), experts_dir=str(tiny_experts / "experts"), data="fashion-mnist",
                                data_dir=str(_data_dir[0]), res=SIDE, width=4, max_start_epoch=2, expert_epochs=1))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert describe(torch.device("cpu")).endswith("float32 exact, deterministic algorithms on")
    finally:
        torch.use_deterministic_algorithms(False)
