"""The prepared GPU check (benchmarks/gpu_check.py) stays runnable: its cheap checks pass on the CPU."""

from scripts import benchmark_script


def gpu_check():
    return benchmark_script("gpu_check")


def test_gradient_checks_of_the_gpu_script_pass_on_the_cpu():
    check = gpu_check()
    check.environment("cpu")
    check.gradients("cpu")  # remat == unroll in float32, and against float64 on the same problem
    check.fourier("cpu")  # the Fourier parameterisation's gradient in float32 vs float64
    rows = {name: (ok, detail) for name, ok, detail, _ in check.ROWS}
    assert rows["environment"][0] == "ok" and "float32 exact" in rows["environment"][1]
    assert rows["remat == unroll, vs float64"][0] == "ok", rows["remat == unroll, vs float64"][1]
    assert rows["fourier: coefficient grad, vs float64"][0] == "ok", rows["fourier: coefficient grad, vs float64"][1]
