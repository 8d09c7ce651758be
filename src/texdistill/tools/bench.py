"""`texdistill bench`: seconds per distillation iteration and peak memory of each gradient mode vs syn_steps.

All numbers come from the same random problem, rebuilt from the seed in fresh Python processes: per syn_steps,
one process times every mode (a warm-up iteration each, which includes any torch.compile, then the fastest of
`repeats` iterations taken round-robin over the modes: other load on a shared machine only adds time), and
one process per mode measures the peak memory of one iteration after a warm-up — CPU: peak resident set
above the live data (hostmem), GPU: torch.cuda.max_memory_allocated above the live data — and writes its
gradients to a file, so each mode can be compared with `unroll`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from texdistill import hardware
from texdistill.commands import BenchConfig, mode_parts
from texdistill.data import READERS, ImageDataset, PixelSpace
from texdistill.errors import BenchError, ConfigError
from texdistill.method.augment import dsa_of
from texdistill.method.matching import MatchProblem, MatchResult, Student, kept_steps_on, match, step_graph_bytes
from texdistill.method.models import FlatParams, ModelSpec, resolve_depth
from texdistill.method.synthetic import SyntheticSet, build_synthetic
from texdistill.method.training import random_seed
from texdistill.storage import load_tensors, save_tensors, write_json
from texdistill.tools.estimate import layout
from texdistill.tools.hostmem import keep_freed_memory, peak_rss, start_peak_rss

log = logging.getLogger(__name__)


REFERENCE = "unroll"
OUT_OF_MEMORY = {"error": "out of memory"}


def data_shape(cfg: BenchConfig) -> tuple[int, int, int]:
    """(channels, side, classes) of the images: the options, or else the usual shape of --data."""
    reader = READERS.get(cfg.data)
    nominal = reader.nominal if reader else None
    channels = cfg.channels or (nominal and nominal.channels)
    res = cfg.res or (nominal and nominal.res)
    classes = cfg.num_classes or (nominal and nominal.classes)
    if not (channels and res and classes):
        raise ConfigError(f"--data {cfg.data} has no known image shape; pass --channels, --res and --num-classes")
    return channels, res, classes


def random_dataset(cfg: BenchConfig) -> ImageDataset:
    """One random uint8 image per class of the benchmarked shape: all the bench needs from a dataset."""
    channels, res, classes = data_shape(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    images = torch.randint(0, 256, (classes, channels, res, res), generator=generator, dtype=torch.uint8)
    labels = torch.arange(classes)
    return ImageDataset("random", images, labels, images, labels, [f"class{k}" for k in range(classes)])


def bench_problem(cfg: BenchConfig, steps: int, compile: bool,
                  kept: bool = False) -> tuple[Student, SyntheticSet, torch.Tensor, MatchProblem]:
    """The student, a noise-initialised synthetic set, η and a random expert segment, all from cfg.seed."""
    device, dtype = cfg.torch_device(), getattr(torch, cfg.dtype)
    hardware.exact_float32()  # as distillation computes (method/distill.py)
    hardware.deterministic(cfg.deterministic)
    dataset = random_dataset(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    synthetic = build_synthetic(cfg.texture, "noise", dataset, PixelSpace.fit(dataset), generator, cfg.ipc,
                                cfg.canvas_size, cfg.canvas_samples, cfg.batch_syn).to(device, dtype)
    torch.manual_seed(cfg.seed)
    flat = FlatParams(model_spec(cfg).build().to(device, dtype))
    start = flat.get()
    # a target a small random step away, as expert segments are; the values do not matter for time/memory
    offset = torch.randn(start.shape, generator=generator).to(device, dtype)  # the same problem in any dtype
    target = start + 0.01 * start.abs().mean() * offset
    problem = MatchProblem(start, target, [random_seed(generator) for _ in range(steps)])
    syn_lr = torch.tensor(cfg.syn_lr_init or 0.01, dtype=dtype, device=device)
    student = Student(flat, dsa_of(cfg), compile=compile)
    student.kept_steps = kept_steps(cfg, steps) if kept else 0
    return student, synthetic, syn_lr, problem


def model_spec(cfg: BenchConfig) -> ModelSpec:
    """The student's ConvNet at the benchmarked shape."""
    channels, res, classes = data_shape(cfg)
    return ModelSpec(channels, classes, res, res, cfg.width, resolve_depth(cfg.depth, res, res))


def kept_steps(cfg: BenchConfig, steps: int) -> int:
    """How many of `steps` student steps keep their graph with --kept-steps, as a run resolves it (distill.py)."""
    channels, res, classes = data_shape(cfg)
    step_bytes = step_graph_bytes(model_spec(cfg), layout(cfg, classes, channels, res).step_batch,
                                  getattr(torch, cfg.dtype).itemsize)
    return kept_steps_on(cfg.torch_device(), cfg.kept_steps, steps, step_bytes, compiled=False)


def describe(cfg: BenchConfig) -> str:
    """One line naming the benchmarked scale."""
    channels, res, classes = data_shape(cfg)
    data = layout(cfg, classes, channels, res).description
    dsa = f"DSA {cfg.dsa_strategy} ({cfg.dsa_mode})" if cfg.dsa else "no DSA"
    return f"ConvNet-{resolve_depth(cfg.depth, res, res)} width {cfg.width}; {data}; {dsa}; {cfg.dtype}"


def _timed(fn, device: torch.device) -> tuple[MatchResult, float, float]:
    """fn() with its wall and CPU seconds."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    _sync(device)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn, device: torch.device) -> tuple[MatchResult, float | None]:
    """fn() and the peak memory in MB it needed above what was live before it (None: cannot measure)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        _sync(device)
        return result, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = start_peak_rss()
    result = fn()
    return result, None if before is None else (peak_rss() - before) / 2**20


def bench_iteration(cfg: BenchConfig, mode: str, steps: int) -> Callable[[], MatchResult]:
    """One distillation iteration's gradient computation in `mode` ('+compile': with --compile on; '+kept': with
    --kept-steps)."""
    name, variant = mode_parts(mode)
    student, synthetic, syn_lr, problem = bench_problem(cfg, steps, variant == "compile", variant == "kept")
    return lambda: match(name, student, synthetic, syn_lr, problem)


def time_modes(cfg: BenchConfig, modes: list[str], steps: int) -> list[dict]:
    """Per mode: the warm-up iteration's seconds, then the fastest wall/CPU seconds of `repeats` iterations
    taken round-robin over the modes (other load on a shared machine only ever adds time)."""
    device = cfg.torch_device()
    iterations = {mode: bench_iteration(cfg, mode, steps) for mode in modes}
    first = {mode: _timed(iterations[mode], device)[1] for mode in modes}
    times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(cfg.repeats):
        for mode in modes:
            times[mode].append(_timed(iterations[mode], device)[1:])
    return [{"mode": mode, "steps": steps, "first_s": first[mode],
             "s_per_iter": min(t[0] for t in times[mode]),
             "cpu_s_per_iter": min(t[1] for t in times[mode])} for mode in modes]


def measure_memory(cfg: BenchConfig, mode: str, steps: int, grad_file: Path) -> dict:
    """Peak memory of one iteration of `mode` after a warm-up (for any compile); saves its gradients."""
    iteration = bench_iteration(cfg, mode, steps)
    iteration()
    result, peak_mb = peak_memory(iteration, cfg.torch_device())
    save_tensors(grad_file, {"pixel_grad": result.pixel_grad, "lr_grad": result.lr_grad.reshape(1)},
                 {"kind": "bench-gradient", "mode": mode, "steps": steps})
    return {"peak_mb": peak_mb, "loss": float(result.loss)}


def _run_worker(cfg: BenchConfig, job: dict) -> dict | list | None:
    """Run one job in a fresh process; its JSON result, or None when it ran out of memory."""
    proc = subprocess.run([sys.executable, "-m", "texdistill.tools.bench", json.dumps({"config": cfg.to_dict(), **job})],
                          capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if "torch.compile failed" in line:  # the '+compile' numbers below are then eager ones
            log.warning("bench worker: %s", line)
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    if "out of memory" in proc.stderr.lower():
        return None
    raise BenchError(f"bench worker {job.get('mode', job.get('modes'))} at {job['steps']} steps failed: "
                     f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")


def bench_steps(cfg: BenchConfig, steps: int, tmp: Path) -> list[dict]:
    """Rows of every mode at `steps`: timings (one process, interleaved), then peak memory (one process each),
    and the gradient differences against unroll and against the exact gradient in float64."""
    modes = cfg.mode_list()
    log.info("bench: timing %s at %d steps", ", ".join(modes), steps)
    rows = _run_worker(cfg, {"kind": "time", "modes": modes, "steps": steps})
    if rows is None:  # one mode (unroll, usually) ran out of memory: time each mode alone
        rows = [(_run_worker(cfg, {"kind": "time", "modes": [mode], "steps": steps}) or [OUT_OF_MEMORY])[0]
                | {"mode": mode, "steps": steps} for mode in modes]
    grad_files = {}
    for row in rows:
        if "error" not in row:
            log.info("bench: peak memory of %s at %d steps", row["mode"], steps)
            grad_files[row["mode"]] = tmp / f"{row['mode']}-{steps}.safetensors"
            row.update(_run_worker(cfg, {"kind": "memory", "mode": row["mode"], "steps": steps,
                                         "grad_file": str(grad_files[row["mode"]])}) or OUT_OF_MEMORY)
    # float32 rounding alone can move a gradient by 1e-3 and more over many steps (ReLU student, chaotic
    # trajectory); the exact gradient in float64 (remat: exact, and its memory does not grow with steps)
    # says how far each mode, unroll included, is from the truth
    if cfg.dtype == "float64" and "remat" in grad_files:
        grad_files["float64"] = grad_files["remat"]
    else:
        grad_files["float64"] = tmp / f"float64-{steps}.safetensors"
        job = {"kind": "memory", "mode": "remat", "steps": steps, "grad_file": str(grad_files["float64"])}
        if _run_worker(dataclasses.replace(cfg, dtype="float64"), job) is None:
            grad_files.pop("float64")
    compare_gradients(rows, grad_files)
    return rows


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300))


def compare_gradients(rows: list[dict], grad_files: dict[str, Path | None]) -> None:
    """Add each row's relative gradient differences against unroll (pixels, η) and the float64 exact one (pixels)."""
    loaded = {name: load_tensors(path)[0] for name, path in grad_files.items() if path is not None}
    for row in rows:
        got = loaded.get(row["mode"]) if "error" not in row else None
        if got is None:
            continue
        if REFERENCE in loaded:
            row["pixel_grad_rel_diff"] = _relative_difference(got["pixel_grad"], loaded[REFERENCE]["pixel_grad"])
            row["lr_grad_rel_diff"] = _relative_difference(got["lr_grad"], loaded[REFERENCE]["lr_grad"])
        if "float64" in loaded:
            row["pixel_grad_error_vs_float64"] = _relative_difference(got["pixel_grad"], loaded["float64"]["pixel_grad"])


def format_table(rows: list[dict]) -> str:
    """A fixed-width table of the rows with ratios against unroll at the same syn_steps."""
    header = (f"{'steps':>5}  {'mode':<20} {'s/iter':>8} {'×unroll':>7} {'CPU s/it':>8} {'peak MB':>9} "
              f"{'×unroll':>7} {'1st it s':>8} {'Δ pixels':>9} {'Δ η':>8} {'err f64':>8}")
    lines = [header, "-" * len(header)]
    reference = {r["steps"]: r for r in rows if r["mode"] == REFERENCE and "error" not in r}

    def ratio(row: dict, key: str) -> str:
        ref = reference.get(row["steps"], {}).get(key)
        return f"{row[key] / ref:7.2f}" if ref and row.get(key) is not None else f"{'–':>7}"

    def num(value: float | None, fmt: str, width: int) -> str:
        return f"{value:{width}{fmt}}" if value is not None else f"{'–':>{width}}"

    for row in rows:
        if "error" in row:
            lines.append(f"{row['steps']:>5}  {row['mode']:<20} {row['error']}")
            continue
        lines.append(f"{row['steps']:>5}  {row['mode']:<20} {row['s_per_iter']:8.3f} {ratio(row, 's_per_iter')} "
                     f"{row['cpu_s_per_iter']:8.3f} {num(row['peak_mb'], '.1f', 9)} {ratio(row, 'peak_mb')} "
                     f"{row['first_s']:8.2f} {num(row.get('pixel_grad_rel_diff'), '.1e', 9)} "
                     f"{num(row.get('lr_grad_rel_diff'), '.1e', 8)} "
                     f"{num(row.get('pixel_grad_error_vs_float64'), '.1e', 8)}")
    return "\n".join(lines)


def environment(cfg: BenchConfig) -> str:
    return f"torch {torch.__version__}, {hardware.describe(cfg.torch_device())}, {platform.machine()}"


def run(cfg: BenchConfig) -> dict:
    """Benchmark every mode at every syn_steps; print the table and write it to <out>/bench.json."""
    bench_problem(cfg, 1, compile=False)  # option mistakes surface here, as one clear error, not in a worker
    with tempfile.TemporaryDirectory(prefix="texdistill-bench-") as tmp:
        rows = [row for steps in cfg.step_list() for row in bench_steps(cfg, steps, Path(tmp))]
    title = "\n".join([
        "texdistill bench — RANDOM data and a random expert segment: time and memory only (no dataset or experts)",
        f"scale:   {describe(cfg)}",
        f"machine: {environment(cfg)}",
        f"s/iter, CPU s/it: fastest of {cfg.repeats} iterations (modes interleaved) after a warm-up iteration "
        f"('1st it s': includes any torch.compile)",
        "peak MB: memory above the live data during one iteration (CPU: resident set; GPU: allocated)",
        "Δ pixels, Δ η: relative gradient difference vs unroll; err f64: pixel gradient vs the exact one in float64",
    ] + [f"+kept:   the last min(steps, {kept_steps(cfg, 10**9)}) steps keep their graph (--kept-steps "
         f"{cfg.kept_steps}); plain remat/first-order replay every step"] * any(
        mode_parts(m)[1] == "kept" for m in cfg.mode_list()))
    table = format_table(rows)
    print(f"{title}\n\n{table}")
    results = {"scale": describe(cfg), "environment": environment(cfg), "config": cfg.to_dict(), "rows": rows}
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    write_json(cfg.run_dir / "bench.json", results)
    return results


def _worker(job: dict) -> None:
    keep_freed_memory()  # as the CLI does, so timings are those of a real run
    cfg = BenchConfig(**job["config"])
    if job["kind"] == "time":
        result = time_modes(cfg, job["modes"], job["steps"])
    else:
        result = measure_memory(cfg, job["mode"], job["steps"], Path(job["grad_file"]))
    print(json.dumps(result))


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
