"""One prepared check of texdistill on a GPU (or, CI-cheap, on the CPU): a single table at the end.

    python benchmarks/gpu_check.py                      # on a lent GPU: < 8 minutes
    python benchmarks/gpu_check.py --device cpu --quick # the same checks, shrunk (what CI can afford)

Checks, each in a fresh process where it matters:
 1. environment: torch, the device, its arithmetic (TF32 off, deterministic kernels);
 2. `texdistill demo --quick` on the device: completes, accuracy and wearability;
 3. remat (every step replayed, and every step kept) == unroll on the device (float32), and remat on the device
    vs unroll in float64 on the CPU; remat with its kernels compiled by Inductor (what --compile auto turns on at
    paper scale) vs eager remat; the Fourier parameterisation's FFT round trip and pulled-back gradient vs float64;
 4. a distillation (--parameterisation fourier) stopped at its checkpoint and resumed equals an uninterrupted one
    (every checkpoint tensor);
 5. `texdistill bench` at the ImageSquawk-texture shape (--quick: the demo's) at 20/40/80 steps: s/it, peak memory;
 6. two processes under torchrun on the one device (NCCL; gloo when NCCL refuses two ranks on one GPU).
A failing check is a row that says so; the script goes on with the others and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROWS: list[tuple[str, str, str, float]] = []  # (check, ok/FAIL, detail, seconds)


def check(name: str):
    def wrap(fn):
        def run(*args):
            started = time.time()
            try:
                ok, detail = fn(*args)
            except Exception as exc:  # noqa: BLE001 — a check that raises is a failed row, the others still run
                ok, detail = False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:150] if str(exc).strip() else ''}"
            ROWS.append((name, "ok" if ok else "FAIL", detail, time.time() - started))
        return run
    return wrap


def texdistill(*argv: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "texdistill", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@check("environment")
def environment(device: str) -> tuple[bool, str]:
    from texdistill.hardware import describe, deterministic, exact_float32

    exact_float32()
    deterministic(True)
    return True, f"torch {torch.__version__}, {describe(torch.device(device if device != 'cuda' else 'cuda:0'))}"


@check("demo --quick")
def demo(device: str, out: Path) -> tuple[bool, str]:
    result = texdistill("demo", "--quick", "--device", device, "--out", str(out / "demo"))
    if result.returncode:
        return False, result.stderr.strip().splitlines()[-1]
    results = json.loads((out / "demo" / "eval.json").read_text())
    wear = results["wearability"]["sets"]["distilled"]["mean"]
    return True, f"accuracy {100 * results['sets']['distilled']['mean']:.1f} %, wearability {wear:.2f}"


def tiny_problem(device: str, dtype: str, compile: bool = False):
    """A small texture problem from the bench's builder (the same problem in any dtype and on any device):
    ConvNet-2 width 16, 5 canvases of 32 px, 2 crops of 16 px per class per step, DSA, 10 steps."""
    from texdistill.config import build_config
    from texdistill.tools.bench import BenchConfig, bench_problem

    cfg = build_config(BenchConfig, {"channels": 1, "res": 16, "num_classes": 5, "width": 16, "depth": 2,
                                     "texture": True, "canvas_size": 2.0, "canvas_samples": 2, "seed": 0,
                                     "device": device, "dtype": dtype})
    return bench_problem(cfg, 10, compile)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


@check("remat == unroll, vs float64")
def gradients(device: str) -> tuple[bool, str]:
    from texdistill.method.matching import match

    student, canvas, eta, p = tiny_problem(device, "float32")
    remat, unroll = (match(m, student, canvas, eta, p) for m in ("remat", "unroll"))
    student.kept_steps = len(p.step_seeds)  # --kept-steps: every step's graph kept instead of replayed
    kept = match("remat", student, canvas, eta, p)
    exact = match("unroll", *tiny_problem("cpu", "float64"))
    vs_unroll, vs_f64 = relative(remat.pixel_grad, unroll.pixel_grad), relative(remat.pixel_grad, exact.pixel_grad)
    kept_vs_unroll = relative(kept.pixel_grad, unroll.pixel_grad)
    return max(vs_unroll, kept_vs_unroll) < 1e-4 and vs_f64 < 1e-3, (
        f"pixel grad: remat vs unroll {vs_unroll:.1e} (steps kept: {kept_vs_unroll:.1e}), vs float64 {vs_f64:.1e}")


@check("fourier: coefficient grad, vs float64")
def fourier(device: str) -> tuple[bool, str]:
    """--parameterisation fourier on the device: the FFT round trip and the pulled-back gradient vs float64 (CPU)."""
    from texdistill.method.matching import match

    grads = []
    for on, dtype in ((device, "float32"), ("cpu", "float64")):
        student, canvas, eta, p = tiny_problem(on, dtype)
        canvas.use_fourier(0.5)
        pixels = canvas.pixels.detach()
        round_trip = relative(canvas.fourier.render(canvas.fourier.coefficients(pixels)), pixels)
        grads.append(canvas.pull_back(match("remat", student, canvas, eta, p).pixel_grad))
    vs_f64 = relative(grads[0], grads[1])
    return vs_f64 < 1e-3 and round_trip < 1e-5, f"round trip {round_trip:.1e}; coefficient grad vs float64 {vs_f64:.1e}"


@check("remat compiled (Inductor) == eager")
def compiled(device: str) -> tuple[bool, str]:
    """What --compile auto turns on at paper scale: the torch.func kernels through Inductor, on the device."""
    from texdistill.method.matching import match

    eager = match("remat", *tiny_problem(device, "float32"))
    student, canvas, eta, p = tiny_problem(device, "float32", compile=True)
    started = time.time()
    result = match("remat", student, canvas, eta, p)
    if not student.compile:
        return False, "torch.compile failed and fell back to eager (see the warning above)"
    difference = relative(result.pixel_grad, eager.pixel_grad)
    return difference < 1e-3, f"pixel grad vs eager remat {difference:.1e}; first call (compile) {time.time() - started:.0f} s"


@check("resume == uninterrupted")
def resume(device: str, out: Path) -> tuple[bool, str]:
    from texdistill.storage import load_tensors

    common = ["--preset", "demo-quick", "--device", device, "--experts-dir", str(out / "demo" / "experts"),
              "--ckpt-every", "3"]
    for name, stops in (("straight", [6]), ("resumed", [3, 6])):
        for iterations in stops:  # with the Fourier parameterisation: its coefficients and buffers resume too
            result = texdistill("distill", *common, "--parameterisation", "fourier", "--iterations", str(iterations),
                                "--out", str(out / name))
            if result.returncode:
                return False, result.stderr.strip().splitlines()[-1]
    a, _ = load_tensors(out / "straight" / "checkpoint.safetensors")
    b, _ = load_tensors(out / "resumed" / "checkpoint.safetensors")
    equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return equal, f"{len(a)} checkpoint tensors {'bit-identical' if equal else 'DIFFER'} after 3 + 3 vs 6 iterations"


@check("bench")
def bench(device: str, out: Path, quick: bool) -> tuple[bool, str]:
    preset, steps = ("demo", "5,10") if quick else ("imagesquawk-texture", "20,40,80")
    result = texdistill("bench", "--preset", preset, "--device", device, "--steps", steps, "--repeats", "2",
                        "--modes", "unroll,remat,remat+kept,first-order", "--out", str(out / "bench"), timeout=1200)
    if result.returncode:
        return False, result.stderr.strip().splitlines()[-1]
    rows = json.loads((out / "bench" / "bench.json").read_text())["rows"]
    return True, "; ".join(f"{r['steps']} steps {r['mode']} {r['s_per_iter']:.2f} s/it {r['peak_mb'] or 0:.0f} MB"
                           for r in rows)


@check("torchrun, 2 ranks on one device")
def torchrun(device: str, out: Path) -> tuple[bool, str]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "texdistill", "distill",
            "--preset", "demo-quick", "--device", device, "--experts-dir", str(out / "demo" / "experts"),
            "--iterations", "2", "--out", str(out / "torchrun")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if result.returncode:
        tail = [line for line in result.stderr.splitlines() if line.strip()][-1:]
        return False, f"exit {result.returncode}: {tail[0][:150] if tail else ''}"
    return True, "2 ranks distilled 2 iterations"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="shrunk to what CI affords (bench at the demo's shape)")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible; use --device cpu for the CPU version of the checks")
    with tempfile.TemporaryDirectory(prefix="texdistill-gpu-check-") as tmp:
        out = args.out or Path(tmp)
        environment(args.device)
        demo(args.device, out)
        gradients(args.device)
        fourier(args.device)
        compiled(args.device)
        resume(args.device, out)
        bench(args.device, out, args.quick)
        torchrun(args.device, out)
    width = max(len(r[0]) for r in ROWS)
    print(f"\n{'check':{width}}  result  seconds  detail")
    for name, ok, detail, seconds in ROWS:
        print(f"{name:{width}}  {ok:6}  {seconds:7.1f}  {detail}")
    sys.exit(1 if any(r[1] != "ok" for r in ROWS) else 0)


if __name__ == "__main__":
    main()
