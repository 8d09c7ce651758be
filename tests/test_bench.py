import json

import pytest

from texdistill.cli import main
from texdistill.tools.bench import BenchConfig, format_table, run


def tiny_bench(tmp_path, **overrides) -> BenchConfig:
    values = dict(out=str(tmp_path), res=8, channels=1, num_classes=3, width=4, depth=2, texture=True, canvas_size=1.5,
                  canvas_samples=2, steps="3", modes="unroll,remat,first-order", repeats=1, dtype="float64",
                  device="cpu")
    return BenchConfig(**{**values, **overrides})


def test_bench_measures_every_mode_and_compares_gradients_with_unroll(tmp_path, capsys):
    results = run(tiny_bench(tmp_path))
    rows = {row["mode"]: row for row in results["rows"]}
    assert set(rows) == {"unroll", "remat", "first-order"}
    for row in rows.values():
        assert row["steps"] == 3 and row["s_per_iter"] > 0 and row["cpu_s_per_iter"] > 0 and row["first_s"] > 0
        assert row["peak_mb"] is not None and row["peak_mb"] >= 0
    assert rows["unroll"]["pixel_grad_rel_diff"] == 0
    assert rows["remat"]["pixel_grad_rel_diff"] < 1e-9 and rows["remat"]["lr_grad_rel_diff"] < 1e-9
    assert rows["remat"]["pixel_grad_error_vs_float64"] < 1e-9  # float64 run: unroll is its own reference
    assert rows["first-order"]["pixel_grad_rel_diff"] > 1e-6
    out = capsys.readouterr().out
    assert "RANDOM data" in out and "first-order" in out and "×unroll" in out
    assert json.loads((tmp_path / "bench.json").read_text())["rows"] == results["rows"]


def test_table_shows_ratios_against_unroll_and_out_of_memory_rows():
    rows = [{"mode": "unroll", "steps": 10, "s_per_iter": 2.0, "cpu_s_per_iter": 3.0, "peak_mb": 100.0, "first_s": 2.5},
            {"mode": "remat", "steps": 10, "s_per_iter": 1.0, "cpu_s_per_iter": 1.5, "peak_mb": 20.0, "first_s": 1.2,
             "pixel_grad_rel_diff": 1e-7, "lr_grad_rel_diff": 2e-7},
            {"mode": "unroll", "steps": 80, "error": "out of memory"}]
    lines = format_table(rows).splitlines()
    remat = next(line for line in lines if " remat " in line).split()
    assert remat[3] == "0.50" and remat[6] == "0.20" and remat[8] == "1.0e-07"
    assert lines[-1].split()[-3:] == ["out", "of", "memory"]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "10,x"], "--steps must be positive integers"),
    (["--modes", "unroll+compile"], "unknown bench mode 'unroll+compile'"),
    (["--modes", "magic"], "unknown bench mode 'magic'"),
])
def test_bad_bench_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main(["bench", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_bench_help_defaults_to_the_demo_preset_and_hides_unused_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in ("--steps", "--modes", "--repeats", "--channels", "--num-classes", "--device", "--out"):
        assert flag in out
    assert "(default: demo)" in out and "(default: 64)" in out  # the demo's ConvNet width
    assert "--lr-img" not in out and "--iterations" not in out and "--dry-run" not in out
