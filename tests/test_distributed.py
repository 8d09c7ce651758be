"""torchrun on CPU (gloo), 2 processes on localhost: results equal those of one process."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

TINY = ["--width", "8", "--seed", "3"]


def texdistill(args, nproc: int = 1, timeout: int = 300):
    """Run `texdistill ARGS` as one process or under torchrun with `nproc` processes (1 thread each)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                if nproc > 1 else [sys.executable])
    result = subprocess.run([*launcher, "-m", "texdistill", *args], capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    experts = ["experts", *TINY, "--num-experts", "3", "--epochs", "2"]
    texdistill([*experts, "--out", str(root / "one")])
    texdistill([*experts, "--out", str(root / "two")], nproc=2)
    return root


def test_experts_from_two_ranks_equal_one_process(runs):
    for index in range(3):
        one = load_file(runs / "one" / "experts" / f"expert_{index:03d}.safetensors")["trajectory"]
        two = load_file(runs / "two" / "experts" / f"expert_{index:03d}.safetensors")["trajectory"]
        assert torch.equal(one, two), f"expert {index} differs"


def test_evaluation_gathers_all_models(runs):
    distill = ["distill", *TINY, "--texture", "--iterations", "2", "--syn-steps", "2", "--expert-epochs", "1",
               "--max-start-epoch", "1"]
    evaluate = ["evaluate", *TINY, "--num-models", "3", "--eval-epochs", "4", "--no-baselines"]
    texdistill([*distill, "--out", str(runs / "one")])
    texdistill([*evaluate, "--out", str(runs / "one")])
    (runs / "two" / "synthetic.safetensors").write_bytes((runs / "one" / "synthetic.safetensors").read_bytes())
    texdistill([*evaluate, "--out", str(runs / "two")], nproc=2)
    one = json.loads((runs / "one" / "eval.json").read_text())["sets"]["distilled"]
    two = json.loads((runs / "two" / "eval.json").read_text())["sets"]["distilled"]
    assert two["models"] == 3 and two["accuracies"] == one["accuracies"]
