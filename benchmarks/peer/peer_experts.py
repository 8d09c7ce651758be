"""Expert training of the original MTT code (its buffer.py) beside `texdistill experts`: whole processes, one run.

Both train one ConvNet-3 (width 128, instance norm) on the real Fashion-MNIST for --epochs epochs: batch 256, SGD lr
0.01 without momentum, DSA with one random transform of color_crop_cutout_flip_scale_rotate per batch, CPU,
float32, the same thread count. The reference runs from a temporary, minimally patched export of its clone, in its
own venv; the data are copied (gunzipped) to a scratch folder laid out as torchvision's FashionMNIST expects, and
texdistill reads the same files. OUT/peer_experts.md and OUT/peer_experts.json get, per side: the wall seconds of
the whole process, split into before training / training epochs / test evaluation / after, images per second of
the training epochs, the test accuracy it reports, and the ratio texdistill / reference.

    python benchmarks/peer/peer_experts.py --reference PATH --venv VENV --out runs/peer
    python benchmarks/peer/peer_experts.py --reference PATH --venv VENV --quick --threads 1 --out /tmp/pe-quick

Resolution: the reference keeps Fashion-MNIST at 28 px, but its ConvNet pads a 1-channel first convolution by 3,
so every feature map is that of a 32-px input (and its classifier sees 128×4×4). texdistill's ConvNet pads by 1,
so it runs at --texdistill-res 32 (the images resized to 32 px): the same convolutions and parameter count.
`--texdistill-res 28` gives it the native images instead (smaller feature maps: less work than the reference).

README.md beside this file has the commands and what each number includes. Shares helpers with peer_bench.py.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peer_bench import (
    FOREIGN_LOAD_WARN,
    STRATEGY,
    ForeignLoad,
    check_venv,
    export_reference,
    fmt,
    log,
    machine,
    patch_torchvision,
    peer_args,
    peer_parser,
    ratio,
    reference_commit,
    thread_env,
    venv_python,
    write_report,
)
from peer_bench import PATCHES as BENCH_PATCHES

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
QUICK_TRAIN, QUICK_TEST = 2000, 1000  # --quick: the first images of each split
WIDTH, BATCH, LR = 128, 256, 0.01

MARK = "print('PEER-MARK {}', it, e, time.time(), flush=True)  # peer benchmark: timing mark\n"
# Text replacements in the reference's temporary copy: (file, old text, new text, why); each old text must occur
# exactly once. The ConvNet .view → .reshape fix is peer_bench.py's (DSA's crop breaks .view under torch 2.13).
PATCHES = [
    ("buffer.py", "import copy\n", "import copy\nimport time  # peer benchmark: timing marks\n",
     "import time (for the timing marks)"),
    ("buffer.py", "    args.device = 'cuda' if torch.cuda.is_available() else 'cpu'\n",
     "    args.device = 'cpu'  # peer benchmark: CPU\n",
     "args.device = 'cpu': CPU even where CUDA exists"),
    ("buffer.py", '            train_loss, train_acc = epoch("train",',
     "            " + MARK.format("train-start") + '            train_loss, train_acc = epoch("train",',
     "timing mark before each training epoch"),
    ("buffer.py", '            test_loss, test_acc = epoch("test",',
     "            " + MARK.format("train-end") + '            test_loss, test_acc = epoch("test",',
     "timing mark after each training epoch (= before its test evaluation)"),
    ("buffer.py", ".format(it, e, train_acc, test_acc))\n",
     ".format(it, e, train_acc, test_acc))\n            " + MARK.format("test-end"),
     "timing mark after each epoch's test evaluation"),
    ("utils.py", "    else:\n        exit('unknown dataset: %s'%dataset)\n",
     "    elif dataset == 'FashionMNIST':  # peer benchmark: HEAD's get_dataset has no Fashion-MNIST branch\n"
     "        channel = 1\n"
     "        im_size = (28, 28)\n"
     "        num_classes = 10\n"
     "        mean = [0.2861]\n"
     "        std = [0.3530]\n"
     "        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)])\n"
     "        dst_train = datasets.FashionMNIST(data_path, train=True, download=True, transform=transform)\n"
     "        dst_test = datasets.FashionMNIST(data_path, train=False, download=True, transform=transform)\n"
     "        class_names = dst_train.classes\n"
     "        class_map = {x: x for x in range(num_classes)}\n"
     "    else:\n        exit('unknown dataset: %s'%dataset)\n",
     "get_dataset: a 'FashionMNIST' branch (1×28×28, 10 classes, torchvision's FashionMNIST, ToTensor + "
     "Normalize(0.2861, 0.3530)) — HEAD has CIFAR10/100, Tiny and ImageNet only"),
    *[p for p in BENCH_PATCHES if p[0] == "networks.py"],
]


def patch_reference(dest: Path) -> None:
    for name, old, new, why in PATCHES:
        path = dest / name
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"reference patch '{why}': expected the text once in {name}, found it "
                             f"{text.count(old)} times (the reference changed: look at the patch again):\n{old}")
        path.write_text(text.replace(old, new, 1))


def lay_out_data(source: Path, raw: Path, quick: bool) -> dict:
    """The four idx files, gunzipped, into raw/ (torchvision's <root>/FashionMNIST/raw); --quick keeps the first
    QUICK_TRAIN / QUICK_TEST records. Returns the image count per split."""
    raw.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, stems in IDX.items():
        for stem in stems:
            path = next((p for p in (source / f"{stem}.gz", source / stem) if p.exists()), None)
            if path is None:
                raise SystemExit(f"{source} has no {stem}[.gz] (--data: the folder of the Fashion-MNIST idx files)")
            with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
                data = f.read()
            ndim = data[3]
            shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            if quick:
                shape[0] = min(shape[0], QUICK_TRAIN if split == "train" else QUICK_TEST)
            record = 1
            for side in shape[1:]:
                record *= side
            header = data[:4] + b"".join(n.to_bytes(4, "big") for n in shape)
            (raw / stem).write_bytes(header + data[4 + 4 * ndim: 4 + 4 * ndim + shape[0] * record])
            counts[split] = shape[0]
    return counts


def run_process(cmd: list, log_file: Path, **kwargs) -> dict:
    """Run cmd to completion with its output in log_file: wall seconds, start/end (time.time()), exit code, CPU
    seconds and max RSS (of the process and the children it waited for), and the other load meanwhile."""
    cmd = [str(c) for c in cmd]
    with open(log_file, "w") as out:
        out.write(shlex.join(cmd) + "\n\n")
        out.flush()
        load = ForeignLoad()
        start, t0 = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, end = time.perf_counter() - t0, time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"command": shlex.join(cmd), "log": str(log_file), "exit_code": proc.returncode, "wall_s": wall,
            "start": start, "end": end, "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024,
            "foreign_load_cores": load.cores()}


def failed(result: dict, why: str) -> dict:
    tail = "".join(Path(result["log"]).read_text(errors="replace").splitlines(keepends=True)[-15:])
    return result | {"error": f"{why}; see {result['log']}", "log_tail": tail}


def split_times(result: dict, train_start: float, train_s: float, test_end: float, test_s: float) -> dict:
    return {"before_train_s": train_start - result["start"], "train_s": train_s, "test_s": test_s,
            "after_s": result["end"] - test_end}


# ------------------------------------------------------------------------------------------------ reference


def run_reference(args, ref: Path, work: Path, n_train: int) -> dict:
    cmd = [venv_python(args.venv), "buffer.py", "--dataset", "FashionMNIST", "--model", "ConvNet",
           "--num_experts", "1", "--train_epochs", args.epochs, "--lr_teacher", LR, "--batch_train", BATCH,
           "--batch_real", BATCH, "--dsa", "True", "--dsa_strategy", STRATEGY, "--mom", "0", "--l2", "0",
           "--save_interval", "1", "--data_path", work / "data", "--buffer_path", work / "buffers"]
    env = dict(os.environ, **thread_env(args.threads), PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    result = run_process(cmd, args.raw / "reference.log", cwd=ref, env=env)
    text = Path(result["log"]).read_text(errors="replace")
    marks = {}  # epoch → {mark: time.time()}
    for name, _, e, t in re.findall(r"PEER-MARK (\S+) (\d+) (\d+) (\S+)", text):
        marks.setdefault(int(e), {})[name] = float(t)
    accs = re.findall(r"Train Acc: (\S+)\tTest Acc: (\S+)", text)
    done = [marks.get(e, {}) for e in range(args.epochs)]
    if result["exit_code"] != 0 or any(len(m) != 3 for m in done) or len(accs) != args.epochs:
        return failed(result, f"exit code {result['exit_code']}, {len(accs)} of {args.epochs} epochs logged")
    epochs = [m["train-end"] - m["train-start"] for m in done]
    tests = [m["test-end"] - m["train-end"] for m in done]
    return result | split_times(result, done[0]["train-start"], sum(epochs), done[-1]["test-end"], sum(tests)) | {
        "epoch_train_s": epochs, "epoch_test_s": tests, "images_per_s": n_train * args.epochs / sum(epochs),
        "train_acc": float(accs[-1][0]), "test_acc": float(accs[-1][1])}


def reference_versions(venv: Path) -> dict:
    code = "import json, torch, torchvision; print(json.dumps([torch.__version__, torchvision.__version__]))"
    proc = subprocess.run([venv_python(venv), "-W", "ignore", "-c", code], capture_output=True, text=True)
    try:
        torch_v, tv_v = json.loads(proc.stdout.strip().splitlines()[-1])
        return {"torch": torch_v, "torchvision": tv_v}
    except (IndexError, ValueError):
        return {}


# ----------------------------------------------------------------------------------------------- texdistill


def run_texdistill(args, raw_data: Path, n_train: int) -> dict:
    out = args.work / "texdistill"
    cmd = [sys.executable, "-m", "texdistill", "experts", "--data", "fashion-mnist", "--data-dir", raw_data,
           "--res", args.texdistill_res, "--width", WIDTH, "--depth", "3", "--num-experts", "1", "--epochs",
           args.epochs, "--lr-teacher", LR, "--momentum-teacher", "0", "--batch-train", BATCH, "--dsa",
           "--dsa-strategy", STRATEGY, "--dsa-mode", "one", "--no-zca", "--device", "cpu", "--seed", "0",
           "--out", out, *shlex.split(args.texdistill_args)]
    result = run_process(cmd, args.raw / "texdistill.log", env=dict(os.environ, **thread_env(args.threads)))
    log_jsonl = out / "log.jsonl"
    records = [json.loads(line) for line in log_jsonl.read_text().splitlines()] if log_jsonl.exists() else []
    if log_jsonl.exists():
        shutil.copy(log_jsonl, args.raw / "texdistill-log.jsonl")
    begin = [r["time"] for r in records if r.get("event") == "dataset"]
    epochs = [r for r in records if "epoch" in r and "train_acc" in r]
    final = [r for r in records if "test_acc" in r]
    if result["exit_code"] != 0 or not begin or len(epochs) != args.epochs or not final:
        return failed(result, f"exit code {result['exit_code']}, {len(epochs)} of {args.epochs} epochs logged")
    times = [begin[-1]] + [r["time"] for r in epochs]
    train_s = times[-1] - times[0]
    return result | split_times(result, times[0], train_s, final[-1]["time"], final[-1]["time"] - times[-1]) | {
        "epoch_train_s": [b - a for a, b in zip(times, times[1:])], "images_per_s": n_train * args.epochs / train_s,
        "train_acc": epochs[-1]["train_acc"], "test_acc": final[-1]["test_acc"]}


# -------------------------------------------------------------------------------------------------- output

ROWS = [  # (key, label, format, ratio?)
    ("wall_s", "whole process, s", ".1f", True),
    ("before_train_s", "before training (start-up, data), s", ".1f", True),
    ("train_s", "training epochs, s", ".1f", True),
    ("test_s", "test evaluation, s", ".1f", True),
    ("after_s", "after (saving, exit), s", ".1f", True),
    ("images_per_s", "training images / s", ".0f", True),
    ("test_acc", "test accuracy", ".4f", False),
    ("train_acc", "train accuracy (last epoch, augmented)", ".4f", False),
    ("cpu_s", "CPU s (process and its waited-for children)", ".1f", True),
    ("max_rss_mb", "max RSS, MB", ".0f", True),
    ("foreign_load_cores", "other load meanwhile, cores", ".2f", False),
]


def markdown(report: dict) -> str:
    m, s, ref, td = report["machine"], report["settings"], report["reference"], report["texdistill"]
    lines = [
        "# MTT reference vs texdistill: expert training (whole processes)",
        "",
        f"- machine: {m['cpu']}, {m['cores_available']} cores available ({m['cpu_count']} CPUs); {s['threads']} "
        f"threads for both; load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}",
        f"- reference: GeorgeCazenavette/mtt-distillation at {report['reference_commit'] or 'unknown commit'} "
        f"(buffer.py), torch {report['reference_versions'].get('torch', '?')}, torchvision "
        f"{report['reference_versions'].get('torchvision', '?')} (its venv)",
        f"- texdistill: `texdistill experts` at {report['texdistill_commit'] or 'unknown commit'}, torch "
        f"{report['texdistill_torch']}; extra flags: {s['texdistill_args'] or 'none'}",
        f"- scale: {s['scale']}",
        f"- data: Fashion-MNIST, {s['train_images']} training / {s['test_images']} test images"
        + (" (--quick: the first images of each split)" if s["quick"] else ""),
        "- whole process: from starting the process to its exit (interpreter, imports, data decoding, training, "
        "evaluation, saving). Training epochs: reference — between marks patched around its `epoch(\"train\", "
        "...)` calls (the batches, DSA, the steps, its per-batch accuracy); texdistill — from its log.jsonl "
        "'dataset' record to its last epoch record (model build, the batches, DSA, the steps). Test evaluation: "
        "reference — its `epoch(\"test\", ...)` after EVERY epoch (DataLoader, 2 worker processes, batch 128); "
        "texdistill — once, after the last epoch (batch 256), plus writing the expert file",
        "- ratio: texdistill / reference (seconds: below 1 = texdistill faster; images/s: above 1 = faster)",
        "",
        "| | reference (buffer.py) | texdistill experts | texdistill / reference |",
        "|---|---:|---:|---:|",
    ]
    for key, label, spec, with_ratio in ROWS:
        a, b = ref.get(key), td.get(key)
        lines.append(f"| {label} | {fmt(a, spec)} | {fmt(b, spec)} | {fmt(ratio(b, a), '.2f') if with_ratio else ''} |")
    if s["epochs"] > 1:
        lines += ["", "Training seconds per epoch: reference " + ", ".join(fmt(x, ".1f") for x in ref.get(
            "epoch_train_s", [])) + "; texdistill " + ", ".join(fmt(x, ".1f") for x in td.get("epoch_train_s", []))]
    loaded = [who for who, part in (("reference", ref), ("texdistill", td))
              if (part.get("foreign_load_cores") or 0) > FOREIGN_LOAD_WARN]
    if loaded:
        lines += ["", f"**WARNING: other processes used more than {FOREIGN_LOAD_WARN} cores while "
                  f"{' and '.join(loaded)} ran: those timings are unreliable (run again on a quiet machine).**"]
    errors = [(who, part) for who, part in (("reference", ref), ("texdistill", td)) if "error" in part]
    if errors:
        lines += ["", "## Errors", ""]
        for who, part in errors:
            lines += [f"- {who}: {part['error']}", "", "```", part.get("log_tail", "").rstrip(), "```"]
    lines += ["", "## Commands", "", f"- reference: `{ref.get('command')}`", f"- texdistill: `{td.get('command')}`",
              "", "## Patches applied to the reference's temporary copy", ""]
    lines += [f"- {name}: {why}" for name, why in report["patches"]]
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = peer_parser(__doc__, "the reference's venv (create it with peer_bench.py --make-venv --setup-only)")
    p.add_argument("--out", type=Path, default=Path("runs/peer"), help="writes peer_experts.md/.json and "
                                                                      "raw-experts/ (both logs) here")
    p.add_argument("--data", type=Path, default=DATA_DIR, help=f"folder of the Fashion-MNIST idx files (.gz or "
                                                               f"not; default {DATA_DIR})")
    p.add_argument("--epochs", type=int, default=1, help="training epochs of the one expert (default: 1)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="threads for both (OMP_NUM_THREADS, MKL_NUM_THREADS; default: the cores available)")
    p.add_argument("--texdistill-res", type=int, default=32, choices=(28, 32),
                   help="texdistill's image side: 32 = the reference's feature-map sizes (default), 28 = native")
    p.add_argument("--texdistill-args", default="", help="extra flags for `texdistill experts`, e.g. "
                                                         "\"--precision bfloat16\" (one flag alone: "
                                                         "--texdistill-args=--no-cache)")
    p.add_argument("--quick", action="store_true", help=f"smoke test: the first {QUICK_TRAIN} training and "
                                                        f"{QUICK_TEST} test images")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (reference copy, data, runs)")
    args = peer_args(p, argv)
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start_machine = machine()
    for path in patch_torchvision(args.venv):
        log(f"patched {path} (skip registrations of missing torchvision ops)")
    error = check_venv(args.venv)
    if error:
        raise SystemExit(f"the reference's imports fail in {args.venv}: {error} (set the venv up with "
                         f"peer_bench.py --make-venv --setup-only)")
    import torch

    args.raw = args.out / "raw-experts"
    args.raw.mkdir(parents=True, exist_ok=True)
    args.work = Path(tempfile.mkdtemp(prefix="peer-experts-"))
    try:
        ref = args.work / "mtt-distillation"
        export_reference(args.reference, ref)
        patch_reference(ref)
        raw_data = args.work / "data" / "FashionMNIST" / "raw"
        counts = lay_out_data(args.data, raw_data, args.quick)
        log(f"reference exported to {ref} ({len(PATCHES)} patches); data in {raw_data}: {counts}")
        versions = reference_versions(args.venv)
        log(f"reference: buffer.py, {args.epochs} epoch(s), {args.threads} thread(s)")
        ref_result = run_reference(args, ref, args.work, counts["train"])
        log(f"reference: {fmt(ref_result.get('wall_s'), '.1f')} s whole, {fmt(ref_result.get('train_s'), '.1f')} s "
            f"training, test acc {fmt(ref_result.get('test_acc'), '.4f')} {ref_result.get('error', '')}")
        log(f"texdistill: experts, {args.epochs} epoch(s), --res {args.texdistill_res}")
        td_result = run_texdistill(args, raw_data, counts["train"])
        log(f"texdistill: {fmt(td_result.get('wall_s'), '.1f')} s whole, {fmt(td_result.get('train_s'), '.1f')} s "
            f"training, test acc {fmt(td_result.get('test_acc'), '.4f')} {td_result.get('error', '')}")
    finally:
        if args.keep_work:
            log(f"kept {args.work}")
        else:
            shutil.rmtree(args.work, ignore_errors=True)

    report = {
        "machine": start_machine | {"load_average_at_end": os.getloadavg()},
        "reference_commit": reference_commit(args.reference), "reference_versions": versions,
        "texdistill_commit": reference_commit(REPO), "texdistill_torch": torch.__version__,
        "settings": {"epochs": args.epochs, "threads": args.threads, "quick": args.quick,
                     "train_images": counts["train"], "test_images": counts["test"],
                     "texdistill_res": args.texdistill_res, "texdistill_args": args.texdistill_args,
                     "scale": f"ConvNet-3 width {WIDTH}, instance norm, 1 expert × {args.epochs} epoch(s), batch "
                              f"{BATCH}, SGD lr {LR} momentum 0, DSA {STRATEGY} (one per batch), CPU float32; "
                              f"reference 28-px images (first conv padded by 3: 32-px feature maps), texdistill "
                              f"{args.texdistill_res}-px images"},
        "reference": ref_result, "texdistill": td_result,
        "ratios": {key: ratio(td_result.get(key), ref_result.get(key)) for key, _, _, r in ROWS if r},
        "patches": [(name, why) for name, _, _, why in PATCHES],
        "command": args.command,
    }
    write_report(args.out, "peer_experts", report, markdown(report))
    return 1 if "error" in ref_result or "error" in td_result else 0


if __name__ == "__main__":
    sys.exit(main())
