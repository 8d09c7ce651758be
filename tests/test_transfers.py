"""No blocking host↔device traffic inside a student step, checked without a GPU.

The set, the student and the expert segment live on the `meta` device (shapes only, no values), so every copy
from the host shows up as a cpu → meta `_to_copy`, and any read of a device value back to the host
(`.item()`, `int(t)`, `.tolist()`: `_local_scalar_dense`) would be a stream sync on a GPU. A dispatch mode
counts both while the three gradient modes run.
"""

from collections import Counter

import pytest
import torch
from test_matching import tiny_problem
from torch.utils._python_dispatch import TorchDispatchMode

from texdistill.method.matching import GRADIENT_MODES, MatchProblem, match
from texdistill.method.transfer import to_device


class DeviceTraffic(TorchDispatchMode):
    """Counts host → device copies (and whether they were non-blocking) and device → host reads."""

    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name == "_to_copy" and "device" in kwargs and torch.device(kwargs["device"]) != args[0].device:
            self.counts["copies"] += 1
            self.counts["blocking copies"] += not kwargs.get("non_blocking", False)
        elif name == "copy_" and args[0].device != args[1].device:
            self.counts["copies"] += 1
            self.counts["blocking copies"] += 1
        elif name == "_local_scalar_dense" and args[0].device.type != "cpu":
            self.counts["device reads"] += 1
        return func(*args, **kwargs)


def on_meta(texture: bool, dsa_mode: str, steps: int):
    student, synthetic, problem = tiny_problem(texture, steps=steps, dsa_mode=dsa_mode)
    meta = torch.device("meta")
    student.flat.model.to(meta)
    problem = MatchProblem(problem.start.to(meta), problem.target.to(meta), problem.step_seeds, problem.loss_name,
                           problem.layers)
    return student, synthetic.to(meta), problem, torch.tensor(0.05, dtype=torch.float64, device=meta)


@pytest.mark.parametrize("mode", GRADIENT_MODES)
@pytest.mark.parametrize("texture", [False, True])
@pytest.mark.parametrize("dsa_mode, dtypes", [("one", 1), ("all", 3)])  # DSA parameters: float, int64, bool
def test_a_student_step_copies_its_draws_once_per_dtype_without_blocking_or_reading_back(mode, texture, dsa_mode,
                                                                                         dtypes):
    steps = 3
    student, synthetic, problem, eta = on_meta(texture, dsa_mode, steps)
    with DeviceTraffic() as traffic:
        result = match(mode, student, synthetic, eta, problem)
    assert result.pixel_grad.device.type == "meta"
    draws = steps * (1 if mode == "unroll" else 2)  # remat and first-order replay every step from its seed
    # per draw: the sample indices (and crop offsets) in one copy, the DSA parameters in one per dtype
    assert traffic.counts["copies"] == draws * (1 + dtypes)
    assert traffic.counts["blocking copies"] == 0 and traffic.counts["device reads"] == 0


def test_to_device_packs_by_dtype_and_keeps_values():
    tensors = {"a": torch.arange(6).view(2, 3), "b": torch.tensor([True, False]), "c": torch.tensor([7, 8]),
               "d": torch.rand(4)}
    assert to_device(tensors, torch.device("cpu")) is tensors  # already there: nothing copied
    with DeviceTraffic() as traffic:
        moved = to_device(tensors, torch.device("meta"))
    assert traffic.counts["copies"] == 3 and traffic.counts["blocking copies"] == 0  # int64, bool, float32
    assert list(moved) == list(tensors)
    assert all(moved[k].shape == t.shape and moved[k].dtype == t.dtype and moved[k].device.type == "meta"
               for k, t in tensors.items())
