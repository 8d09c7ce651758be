"""The original MTT code (GeorgeCazenavette/mtt-distillation) beside `texdistill bench`, in one run on one machine.

Seconds per distillation iteration and peak memory of the reference's texture distillation (its own distill.py,
run from a temporary, minimally patched copy of its clone, in its own venv) and of `texdistill bench` (modes
unroll, remat, remat+kept, first-order, first-order+kept) at the same scale, for several syn_steps; the ratio
table goes to OUT/peer.md and OUT/peer.json. No code of the reference is copied into texdistill: the reference only ever runs from its clone.

    python benchmarks/peer/peer_bench.py --reference PATH --venv VENV --make-venv --out runs/peer
    python benchmarks/peer/peer_bench.py --reference PATH --venv VENV --quick --out /tmp/peer-quick  # smoke test

Scale (the earlier comparison): 10 classes, 1 channel, ConvNet-3 width 128 with instance norm, texture mode —
10 canvases of twice the crop side, one random wrap-around crop per canvas per student step, DSA with one random
transform of color_crop_cutout_flip_scale_rotate per step. The reference runs Fashion-MNIST-shaped 28-px crops:
its ConvNet pads a 1-channel first convolution by 3, so every feature map is that of a 32-px input; texdistill
runs 32-px crops with padding 1 (`--res 32`): the same convolutions, the same parameter count. Both run on
random data (time and memory do not depend on the values): the reference on a random tensor dataset patched into
its get_dataset and a random-walk expert buffer made with its own get_network (make_buffer.py), texdistill
bench on its own random problem. Both use the same thread count (OMP_NUM_THREADS, torch.set_num_threads).

README.md beside this file has the commands, the venv recipe and what each patch does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = "PeerRandom"  # the dataset name the get_dataset patch adds to the reference
STRATEGY = "color_crop_cutout_flip_scale_rotate"
EXPERTS, SNAPSHOTS, EXPERT_EPOCHS, MAX_START_EPOCH = 2, 5, 2, 2  # buffer: start ∈ {0, 1}, target = start + 2 < 5
FOREIGN_LOAD_WARN = 0.2  # cores of other processes' CPU use during a measurement above which the table warns
REF_RES, TEXDISTILL_RES, CHANNELS, CLASSES, CANVAS_SIZE = 28, 32, 1, 10, 2

# Text replacements applied to the temporary copy of the reference: (file, old text, new text, why). Each old
# text must occur exactly once, else the run stops (the reference changed: look at the patch again).
PATCHES = [
    ("distill.py", "import wandb\n",
     "import wandb\nimport peer_hook  # peer benchmark: timing marks (benchmarks/peer/peer_hook.py)\n",
     "import the timing hook"),
    ("distill.py", "    args.device = 'cuda' if torch.cuda.is_available() else 'cpu'\n",
     "    args.device = 'cpu'  # peer benchmark: CPU\n",
     "run on the CPU even where CUDA is present"),
    ("distill.py", "    eval_it_pool = np.arange(0, args.Iteration + 1, args.eval_it).tolist()\n",
     "    eval_it_pool = []  # peer benchmark: no evaluation and no image saving (timing only)\n",
     "no evaluation, no image saving (its save block also calls .cuda())"),
    ("distill.py", "    args.distributed = torch.cuda.device_count() > 1\n",
     "    args.distributed = False  # peer benchmark: one CPU process\n",
     "no DataParallel"),
    ("distill.py", "        save_this_it = False\n",
     "        save_this_it = False\n        peer_hook.mark('iteration', it)\n",
     "timing mark: iteration start"),
    ("distill.py", "        for step in range(args.syn_steps):\n",
     "        peer_hook.mark('match', it)\n        for step in range(args.syn_steps):\n",
     "timing mark: before the syn_steps student steps"),
    ("distill.py", "        grand_loss.backward()\n",
     "        grand_loss.backward()\n        peer_hook.mark('backward', it)\n",
     "timing mark: after the meta-gradient"),
    ("distill.py", "        optimizer_lr.step()\n",
     "        optimizer_lr.step()\n        peer_hook.mark('step', it)\n",
     "timing mark: iteration end"),
    ("networks.py", "get_device())\n        out = self.features(x)\n        out = out.view(out.size(0), -1)\n",
     "get_device())\n        out = self.features(x)\n"
     "        out = out.reshape(out.size(0), -1)  # peer benchmark: torch 2.x may return channels-last features\n",
     "ConvNet.forward: .view → .reshape (under torch 2.13 a 1-channel batch that DSA's crop permuted is "
     "ambiguous, the convolutions return channels-last features, and .view fails)"),
    ("utils.py",
     "    net_width, net_depth, net_act, net_norm, net_pooling = 128, 3, 'relu', 'instancenorm', 'avgpooling'\n",
     "    net_width, net_depth, net_act, net_norm, net_pooling = int(os.environ.get('PEER_WIDTH', 128)), 3, "
     "'relu', 'instancenorm', 'avgpooling'  # peer benchmark: width (default 128, unchanged)\n",
     "ConvNet width from PEER_WIDTH (128 unless --width/--quick)"),
    ("utils.py", "    else:\n        exit('unknown dataset: %s'%dataset)\n",
     f"    elif dataset == '{DATASET}':  # peer benchmark: random Fashion-MNIST-shaped data (timing only)\n"
     f"        channel = {CHANNELS}\n"
     f"        im_size = ({REF_RES}, {REF_RES})\n"
     f"        num_classes = {CLASSES}\n"
     "        mean = [0.2860]\n"
     "        std = [0.3530]\n"
     f"        dst_train = TensorDataset(torch.randn(100, {CHANNELS}, {REF_RES}, {REF_RES}), "
     f"torch.arange(100) % {CLASSES})\n"
     f"        dst_test = TensorDataset(torch.randn(20, {CHANNELS}, {REF_RES}, {REF_RES}), "
     f"torch.arange(20) % {CLASSES})\n"
     "        class_names = [str(c) for c in range(num_classes)]\n"
     "        class_map = {x: x for x in range(num_classes)}\n"
     "    else:\n        exit('unknown dataset: %s'%dataset)\n",
     f"dataset '{DATASET}': 100 random {CHANNELS}×{REF_RES}×{REF_RES} images, {CLASSES} classes"),
]

# The torchvision wheel that pairs with this torch may carry compiled ops (_C) built for another torch build;
# they then do not load, and `import torchvision` fails registering fake kernels / autograd formulas for the
# missing ops. The reference only uses torchvision's datasets and transforms, so the registrations of missing
# ops are skipped: a helper is inserted and the registration calls go through it (idempotent, marked).
TV_MARK = "# peer-benchmark patch"
TV_HELPER = f'''
{TV_MARK} (benchmarks/peer/peer_bench.py): skip registrations of torchvision ops that are missing because the
# compiled ops (_C) do not load beside this torch build; datasets and transforms do not need them.
def _peer_op_exists(qualname):
    namespace, _, name = qualname.partition("::")
    try:
        return hasattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return False


def _peer_register_fake(qualname, *args, **kwargs):
    if _peer_op_exists(qualname):
        return torch.library.register_fake(qualname, *args, **kwargs)
    return args[0] if args and callable(args[0]) else (lambda fn: fn)


def _peer_register_autograd(qualname, *args, **kwargs):
    if _peer_op_exists(qualname):
        return torch.library.register_autograd(qualname, *args, **kwargs)

'''
TV_ANCHOR = "import torchvision.extension  # noqa: F401\n"
TV_FILES = ("_meta_registrations.py", "_autograd_registrations.py")


def log(msg: str) -> None:
    print(f"[peer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ForeignLoad:
    """CPU time that processes other than ours used while a measurement ran, in cores (from /proc/stat: it sees
    jobs in other containers of the machine too, which `ps` may not). Other load makes both sides slower, and
    with every core in use OpenMP threads can spin for a long time: a measurement with other load is unreliable."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system irq softirq steal (not idle, iowait)
        own = os.times()
        ours = own.children_user + own.children_system + own.user + own.system
        return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), ours

    def cores(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        return max(0.0, ((end[1] - self.start[1]) - (end[2] - self.start[2])) / (end[0] - self.start[0]))


# ----------------------------------------------------------------------------------------------------- venv


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def paired_torchvision(torch_version: str) -> str:
    """torchvision's release that pairs with a torch release: torch 2.M.P ↔ torchvision 0.(M+15).P."""
    major, minor, patch = (int(x) for x in torch_version.split("+")[0].split(".")[:3])
    if major != 2:
        raise SystemExit(f"no known torchvision pairing for torch {torch_version}; pass --torchvision-spec")
    return f"torchvision==0.{minor + 15}.{patch}"


def make_venv(venv: Path, torch_spec: str, torchvision_spec: str) -> None:
    log(f"creating venv {venv} ({torch_spec}, {torchvision_spec} --no-deps, numpy pillow kornia tqdm scipy wandb)")
    run([sys.executable, "-m", "venv", venv])
    pip = [venv_python(venv), "-m", "pip", "install", "--quiet"]
    run([*pip, torch_spec])
    run([*pip, "--no-deps", torchvision_spec])  # its own requirement would pull another torch build
    run([*pip, "numpy", "pillow", "kornia", "tqdm", "scipy", "wandb"])


def patch_torchvision(venv: Path) -> list[str]:
    """Make `import torchvision` work without its compiled ops (idempotent); the files it changed."""
    py = venv_python(venv)
    where = subprocess.run([py, "-c", "import importlib.util as u; print(u.find_spec('torchvision').origin)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    package = Path(where).parent
    changed = []
    for name in TV_FILES:
        path = package / name
        if not path.exists():
            continue
        text = path.read_text()
        if TV_MARK in text:
            continue
        if text.count(TV_ANCHOR) != 1:
            raise SystemExit(f"{path}: expected one line '{TV_ANCHOR.strip()}' to patch after; torchvision changed")
        text = text.replace(TV_ANCHOR, TV_ANCHOR + TV_HELPER, 1)
        text = text.replace("@torch.library.register_fake(", "@_peer_register_fake(")
        text = text.replace("    torch.library.register_autograd(", "    _peer_register_autograd(")
        text = text.replace("\ntorch.library.register_autograd(", "\n_peer_register_autograd(")
        write_atomic(path, text)
        changed.append(str(path))
    return changed


def check_venv(venv: Path) -> str | None:
    """None if the reference's imports work in the venv, else the error."""
    code = ("import torch, torchvision, kornia, scipy, tqdm, wandb, numpy\n"
            "from torchvision import datasets, transforms\n"
            "from scipy.ndimage.interpolation import rotate\n")
    if not venv_python(venv).exists():
        return f"{venv_python(venv)} does not exist"
    proc = subprocess.run([venv_python(venv), "-W", "ignore", "-c", code], capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def prepare_venv(args) -> None:
    import torch
    if not venv_python(args.venv).exists():
        if not args.make_venv:
            raise SystemExit(f"no venv at {args.venv}: pass --make-venv, or create it as README.md shows")
        make_venv(args.venv, args.torch_spec or f"torch=={torch.__version__}",
                  args.torchvision_spec or paired_torchvision(torch.__version__))
    for path in patch_torchvision(args.venv):
        log(f"patched {path} (skip registrations of missing torchvision ops)")
    error = check_venv(args.venv)
    if error:
        raise SystemExit(f"the reference's imports fail in {args.venv}: {error}")


# ------------------------------------------------------------------------------------------------ reference


def is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def reference_commit(path: Path) -> str | None:
    git = ["git", f"--git-dir={path}"] if is_git_dir(path) else ["git", "-C", str(path)]
    proc = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    commit = proc.stdout.strip()
    if not is_git_dir(path):
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        if dirty.stdout.strip():
            commit += "-dirty"
    return commit


def export_reference(path: Path, dest: Path) -> None:
    """The reference's files (without docs/ and .git) into dest: `git archive` of HEAD from a git dir, else a copy."""
    if is_git_dir(path):
        names = subprocess.run(["git", f"--git-dir={path}", "ls-tree", "-r", "--name-only", "HEAD"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        names = [n for n in names if not n.startswith("docs/")]
        archive = dest.parent / "reference.tar"
        # git may warn about the absent docs/ blobs of a partial mirror even though they are not exported
        proc = subprocess.run(["git", f"--git-dir={path}", "archive", "--format=tar", f"--output={archive}", "HEAD",
                               "--", *names], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"git archive of {path} failed:\n{proc.stderr}")
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
        archive.unlink()
    elif (path / "distill.py").is_file():
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns(".git", "docs", "__pycache__", "buffers",
                                                                  "logged_files", "wandb"))
    else:
        raise SystemExit(f"--reference {path}: neither a git dir nor a clone of mtt-distillation (no distill.py)")


def patch_reference(dest: Path) -> None:
    for name, old, new, why in PATCHES:
        path = dest / name
        text = path.read_text()
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"reference patch '{why}': expected the text once in {name}, found it {count} times:\n"
                             f"{old}")
        path.write_text(text.replace(old, new, 1))
    shutil.copy(HERE / "peer_hook.py", dest / "peer_hook.py")


def reference_env(args, work: Path, extra: dict) -> dict:
    env = dict(os.environ, **thread_env(args.threads), WANDB_MODE="disabled", WANDB_SILENT="true",
               WANDB_DIR=str(work), WANDB_CONFIG_DIR=str(work / "wandb-config"),
               WANDB_CACHE_DIR=str(work / "wandb-cache"), WANDB_DATA_DIR=str(work / "wandb-data"),
               PEER_WIDTH=str(args.width), PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def thread_env(threads: int) -> dict:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def make_buffer(args, ref: Path, buffers: Path, work: Path) -> None:
    out = buffers / DATASET / "ConvNet"
    cmd = [venv_python(args.venv), HERE / "make_buffer.py", out, "--experts", EXPERTS, "--snapshots", SNAPSHOTS,
           "--channels", CHANNELS, "--res", REF_RES, "--classes", CLASSES]
    proc = subprocess.run([str(c) for c in cmd], cwd=ref, env=reference_env(args, work, {}), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"making the timing buffer failed:\n{proc.stderr[-3000:]}")
    log(proc.stdout.strip())


def run_reference(args, ref: Path, buffers: Path, work: Path, steps: int, raw: Path) -> dict:
    """One process of the reference's distill.py: 1 warm-up, `iterations` timed, 1 memory iteration."""
    result_file = raw / f"reference-{steps}.json"
    result_file.unlink(missing_ok=True)
    cmd = [venv_python(args.venv), "distill.py", "--dataset", DATASET, "--model", "ConvNet", "--ipc", "1",
           "--syn_steps", steps, "--expert_epochs", EXPERT_EPOCHS, "--max_start_epoch", MAX_START_EPOCH,
           "--Iteration", args.iterations + 1, "--texture", "--canvas_size", CANVAS_SIZE, "--canvas_samples", "1",
           "--pix_init", "noise", "--dsa", "True", "--dsa_strategy", STRATEGY, "--lr_img", "1000", "--lr_lr", "1e-05",
           "--lr_teacher", "0.01", "--buffer_path", buffers, "--data_path", work / "data", "--max_files", "1"]
    env = reference_env(args, work, {"PEER_THREADS": str(args.threads), "PEER_WARMUP": "1",
                                     "PEER_TIMED": str(args.iterations), "PEER_RESULT": str(result_file),
                                     "PEER_KEEP_FREED": "1" if args.reference_keep_freed_memory else "0"})
    log_file = raw / f"reference-{steps}.log"
    with open(log_file, "w") as out:
        out.write(" ".join(str(c) for c in cmd) + "\n\n")
        out.flush()
        proc = subprocess.run([str(c) for c in cmd], cwd=ref, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not result_file.exists():
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-15:])
        return {"error": f"exit code {proc.returncode}; see {log_file}", "log_tail": tail}
    return summarize_reference(json.loads(result_file.read_text()))


def summarize_reference(raw: dict) -> dict:
    timed = [raw["marks"].get(str(it), {}) for it in range(raw["warmup"], raw["warmup"] + raw["timed"])]
    if any(set(m) != {"iteration", "match", "backward", "step"} for m in timed):
        return {"error": "timing marks missing (the run stopped early)"}
    match = [m["backward"][0] - m["match"][0] for m in timed]
    match_cpu = [m["backward"][1] - m["match"][1] for m in timed]
    whole = [m["step"][0] - m["iteration"][0] for m in timed]
    warm = raw["marks"].get("0", {})
    memory = raw["memory"]
    peak = (memory["hwm_kib"] - memory["rss_before_kib"]) / 1024 if "hwm_kib" in memory else None
    return {
        "s_per_iter": min(match), "s_per_iter_median": statistics.median(match),
        "s_per_iter_mean": statistics.fmean(match),
        "cpu_s_per_iter": min(match_cpu), "whole_iteration_s": min(whole),
        "first_s": warm["backward"][0] - warm["match"][0] if {"match", "backward"} <= set(warm) else None,
        "match_s_all": match, "whole_iteration_s_all": whole,
        "peak_mb": peak, "memory_error": memory.get("error"),
        "process_max_rss_mb": raw["process_max_rss_kib"] / 1024,
        "threads": raw["threads"], "keep_freed_memory": raw["keep_freed_memory"], "versions": raw["versions"],
    }


# ----------------------------------------------------------------------------------------------- texdistill


def run_texdistill(args, steps: int, raw: Path) -> dict:
    out = raw / f"texdistill-{steps}"
    cmd = [sys.executable, "-m", "texdistill", "bench", "--preset", "demo", "--data", "fashion-demo",
           "--res", TEXDISTILL_RES, "--channels", CHANNELS, "--num-classes", CLASSES, "--width", args.width,
           "--depth", "3", "--texture", "--canvas-size", CANVAS_SIZE, "--canvas-samples", "1", "--dsa",
           "--dsa-strategy", STRATEGY, "--dsa-mode", "one", "--syn-lr-init", "0.01", "--device", "cpu",
           "--dtype", "float32", "--seed", "0", "--steps", steps, "--modes", ",".join(args.modes),
           "--repeats", args.iterations, "--out", out]
    env = dict(os.environ, **thread_env(args.threads))
    log_file = raw / f"texdistill-{steps}.log"
    with open(log_file, "w") as f:
        f.write(" ".join(str(c) for c in cmd) + "\n\n")
        f.flush()
        proc = subprocess.run([str(c) for c in cmd], env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not (out / "bench.json").exists():
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-15:])
        return {"error": f"exit code {proc.returncode}; see {log_file}", "log_tail": tail}
    bench = json.loads((out / "bench.json").read_text())
    rows = {row["mode"]: row for row in bench["rows"]}
    return {"scale": bench["scale"], "environment": bench["environment"], "command": " ".join(str(c) for c in cmd),
            "modes": {mode: rows.get(mode, {"error": "missing"}) for mode in args.modes}}


# -------------------------------------------------------------------------------------------------- output


def machine() -> dict:
    model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpu_count": os.cpu_count(), "cores_available": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "load_average_at_start": os.getloadavg()}


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def fmt(value, spec=".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"


def make_rows(results: list[tuple[int, dict, dict]], modes: list[str]) -> list[dict]:
    rows = []
    for steps, ref, td in results:
        row = {"syn_steps": steps, "reference": ref, "texdistill": td, "ratios": {}}
        for mode in modes:
            got = td.get("modes", {}).get(mode, {})
            row["ratios"][mode] = {"time": ratio(got.get("s_per_iter"), ref.get("s_per_iter")),
                                   "memory": ratio(got.get("peak_mb"), ref.get("peak_mb"))}
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    modes, rows, s = report["settings"]["modes"], report["rows"], report["settings"]
    m, ref = report["machine"], report["reference"]
    lines = [
        "# MTT reference vs texdistill: seconds per iteration and peak memory",
        "",
        f"- machine: {m['cpu']}, {m['cores_available']} cores available ({m['cpu_count']} CPUs); "
        f"{s['threads']} threads for both; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}",
        f"- reference: GeorgeCazenavette/mtt-distillation at {ref['commit'] or 'unknown commit'}, "
        f"torch {ref.get('versions', {}).get('torch', '?')} (its venv); texdistill: torch {report['texdistill_torch']}",
        f"- scale: {s['scale']}",
        "- data: RANDOM (reference: a random tensor dataset patched into its get_dataset and a random-walk expert "
        "buffer from its own get_network; texdistill bench: its own random problem) — time and memory only",
        f"- s/it: the fastest of {s['iterations']} iterations after one warm-up; reference: its distill.py loop from "
        "the student steps through grand_loss.backward() (what texdistill bench times: one meta-gradient); "
        "'whole it' adds its network build, expert lookup, logging and optimiser steps",
        "- peak MB: resident memory above the live data during one iteration after the timed ones "
        "(glibc's freed blocks released and the kernel's high-water mark reset first; texdistill: in a fresh "
        "process after one warm-up)",
        "- reference allocator: " + ("texdistill's (freed blocks kept)" if s["reference_keep_freed_memory"]
                                     else "as shipped (glibc defaults)") + "; "
        "texdistill keeps freed blocks for reuse (its CLI's setting)",
        "- ratio: texdistill / reference (below 1: texdistill is faster or smaller)",
        "",
        "## Seconds per iteration",
        "",
        "| syn_steps | reference s/it | reference whole it | " + " | ".join(f"{mo} s/it | ×ref" for mo in modes) + " |",
        "|---:|---:|---:|" + "---:|---:|" * len(modes),
    ]
    for row in rows:
        r, td = row["reference"], row["texdistill"].get("modes", {})
        cells = [str(row["syn_steps"]), fmt(r.get("s_per_iter")), fmt(r.get("whole_iteration_s"))]
        for mode in modes:
            cells += [fmt(td.get(mode, {}).get("s_per_iter")), fmt(row["ratios"][mode]["time"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Peak memory (MB above the live data)", "",
              "| syn_steps | reference | " + " | ".join(f"{mo} | ×ref" for mo in modes) + " |",
              "|---:|---:|" + "---:|---:|" * len(modes)]
    for row in rows:
        r, td = row["reference"], row["texdistill"].get("modes", {})
        cells = [str(row["syn_steps"]), fmt(r.get("peak_mb"), ".1f")]
        for mode in modes:
            cells += [fmt(td.get(mode, {}).get("peak_mb"), ".1f"), fmt(row["ratios"][mode]["memory"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    loaded = [(row["syn_steps"], who, part["foreign_load_cores"]) for row in rows
              for who, part in (("reference", row["reference"]), ("texdistill", row["texdistill"]))
              if (part.get("foreign_load_cores") or 0) > FOREIGN_LOAD_WARN]
    lines += ["", "Other load (CPU of other processes, /proc/stat) during each measurement, in cores: " + "; ".join(
        f"{row['syn_steps']} steps: reference {fmt(row['reference'].get('foreign_load_cores'), '.2f')}, "
        f"texdistill {fmt(row['texdistill'].get('foreign_load_cores'), '.2f')}" for row in rows)]
    if loaded:
        lines += ["", "**WARNING: other processes used the CPU during " + ", ".join(
            f"{who} at {st} steps ({cores:.2f} cores)" for st, who, cores in loaded)
            + ": those timings are unreliable (run again on a quiet machine).**"]
    errors = [(row["syn_steps"], who, part["error"]) for row in rows
              for who, part in (("reference", row["reference"]), ("texdistill", row["texdistill"])) if "error" in part]
    if errors:
        lines += ["", "## Errors", ""] + [f"- syn_steps {st}, {who}: {err}" for st, who, err in errors]
    lines += ["", "## Patches applied to the reference's temporary copy", ""]
    lines += [f"- {name}: {why}" for name, why in report["reference"]["patches"]]
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ main


def write_report(out: Path, name: str, report: dict, md: str) -> None:
    """OUT/<name>.json and OUT/<name>.md, each written atomically; the markdown is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f"{name}.json", json.dumps(report, indent=1) + "\n")
    write_atomic(out / f"{name}.md", md)
    print(md)
    log(f"wrote {out / (name + '.md')} and {out / (name + '.json')}")


def peer_parser(doc: str, venv_help: str) -> argparse.ArgumentParser:
    """The options every peer benchmark takes: the reference's clone and its venv."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True,
                   help="the reference: a clone of mtt-distillation, or a git dir of it (HEAD is exported without "
                        "docs/)")
    p.add_argument("--venv", type=Path, required=True, help=venv_help)
    return p


def peer_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parsed options with absolute paths, and the command line that ran (for the report)."""
    args = p.parse_args(argv)
    args.reference, args.venv, args.out = args.reference.resolve(), args.venv.absolute(), args.out.resolve()
    args.command = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    return args


def parse_args(argv=None):
    p = peer_parser(__doc__, "venv in which the reference runs")
    p.add_argument("--make-venv", action="store_true", help="create --venv if it does not exist (README.md: recipe)")
    p.add_argument("--setup-only", action="store_true", help="prepare (and check) the venv, then stop")
    p.add_argument("--torch-spec", help="pip requirement for the venv's torch (default: this python's torch version)")
    p.add_argument("--torchvision-spec", help="pip requirement for torchvision (default: the release pairing torch)")
    p.add_argument("--out", type=Path, default=Path("runs/peer"), help="writes peer.md, peer.json and raw/ here")
    p.add_argument("--steps", default="20,80", help="comma-separated syn_steps (default: 20,80)")
    p.add_argument("--iterations", type=int, default=5, help="timed iterations after one warm-up (default: 5)")
    p.add_argument("--width", type=int, default=128, help="ConvNet width, both sides (default: 128, MTT's)")
    p.add_argument("--modes", default="unroll,remat,remat+kept,first-order,first-order+kept",
                   help="texdistill bench gradient modes")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="threads for both (default: the cores available)")
    p.add_argument("--reference-keep-freed-memory", action="store_true",
                   help="give the reference texdistill's allocator setting (glibc keeps freed blocks); "
                        "default: the reference as shipped")
    p.add_argument("--quick", action="store_true", help="smoke test: syn_steps 2, 1 iteration, width 16")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary reference copy (its path is printed)")
    args = peer_args(p, argv)
    if args.quick:
        args.steps, args.iterations, args.width = "2", 1, 16
    args.steps = [int(s) for s in args.steps.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.steps or min(args.steps) < 1 or args.iterations < 1 or args.width < 1 or args.threads < 1:
        p.error("--steps, --iterations, --width and --threads must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start_machine = machine()
    prepare_venv(args)
    if args.setup_only:
        log(f"venv {args.venv} ready")
        return 0
    import torch

    commit = reference_commit(args.reference)
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="peer-reference-"))
    try:
        ref = work / "mtt-distillation"
        export_reference(args.reference, ref)
        patch_reference(ref)
        log(f"reference {commit or '(no commit)'} exported to {ref}, {len(PATCHES)} patches applied")
        buffers = work / "buffers"
        make_buffer(args, ref, buffers, work)
        results = []
        for steps in args.steps:
            log(f"syn_steps {steps}: reference (1 warm-up + {args.iterations} timed + 1 memory iteration)")
            load = ForeignLoad()
            ref_result = run_reference(args, ref, buffers, work, steps, raw)
            ref_result["foreign_load_cores"] = load.cores()
            log(f"syn_steps {steps}: reference {fmt(ref_result.get('s_per_iter'))} s/it, "
                f"peak {fmt(ref_result.get('peak_mb'), '.1f')} MB {ref_result.get('error', '')}")
            log(f"syn_steps {steps}: texdistill bench ({', '.join(args.modes)})")
            load = ForeignLoad()
            td_result = run_texdistill(args, steps, raw)
            td_result["foreign_load_cores"] = load.cores()
            for who, part in (("reference", ref_result), ("texdistill", td_result)):
                if (part["foreign_load_cores"] or 0) > FOREIGN_LOAD_WARN:
                    log(f"WARNING syn_steps {steps}: other processes used {part['foreign_load_cores']:.2f} cores "
                        f"while {who} was measured: its timings are unreliable")
            for mode, row in td_result.get("modes", {}).items():
                log(f"syn_steps {steps}: texdistill {mode} {fmt(row.get('s_per_iter'))} s/it, "
                    f"peak {fmt(row.get('peak_mb'), '.1f')} MB")
            if "error" in td_result:
                log(f"syn_steps {steps}: texdistill failed: {td_result['error']}")
            results.append((steps, ref_result, td_result))
    finally:
        if args.keep_work:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    ref_versions = next((r.get("versions") for _, r, _ in results if r.get("versions")), {})
    scale = next((t["scale"] for _, _, t in results if "scale" in t), None)
    report = {
        "machine": start_machine | {"load_average_at_end": os.getloadavg()},
        "texdistill_torch": torch.__version__,
        "reference": {"repository": "GeorgeCazenavette/mtt-distillation", "path": str(args.reference),
                      "commit": commit, "versions": ref_versions,
                      "patches": [(name, why) for name, _, _, why in PATCHES]},
        "settings": {"steps": args.steps, "iterations": args.iterations, "width": args.width, "modes": args.modes,
                     "threads": args.threads, "quick": args.quick,
                     "reference_keep_freed_memory": args.reference_keep_freed_memory,
                     "scale": (f"ConvNet-3 width {args.width}, instance norm, {CLASSES} classes, {CHANNELS} channel; "
                               f"texture: {CLASSES} canvases of {CANVAS_SIZE}× the crop side, 1 crop per canvas per "
                               f"step; DSA {STRATEGY} (one per step); reference {REF_RES}-px crops (first conv "
                               f"padded by 3: 32-px feature maps), texdistill {TEXDISTILL_RES}-px crops"),
                     "texdistill_scale": scale},
        "rows": make_rows(results, args.modes),
        "command": args.command,
    }
    write_report(args.out, "peer", report, markdown(report))
    failed = any("error" in part for row in report["rows"] for part in (row["reference"], row["texdistill"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
