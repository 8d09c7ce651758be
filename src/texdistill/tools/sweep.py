"""`texdistill sweep SPEC`: distil and evaluate one run per row of a knob study; a table of accuracy vs knobs.

A spec is a JSON file: a preset, base values every row shares, and rows of values that differ from the base (a
row may name a preset of its own with "preset"; an optional "describe" maps rows to a line of text):

    {"preset": "demo", "base": {"iterations": 300, "num_models": 2},
     "rows": {"noise": {"init": "noise"}, "collage": {"init": "real"}, "ipc1": {"texture": false}}}

Each row is one run folder <out>/<row> (experts → distill → evaluate with the stages' own run()), so a row
resumes like any run and a finished row is skipped. Rows are judged on the validation split (evaluate
--split val; a row or the base may say "split": "test"); the test split is for final tables. Rows share
experts: one folder per distinct expert configuration (<out>/experts-<hash>), so a row that does not change
the experts costs distill + evaluate only. After every row <out>/sweep.md and <out>/sweep.json hold the
table so far.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from texdistill.commands import SweepConfig
from texdistill.config import DistillConfig, ExpertsConfig, build_config
from texdistill.errors import ConfigError
from texdistill.method import setfile
from texdistill.options import refuse_unknown
from texdistill.presets import known_options, preset_values
from texdistill.registry import COMMANDS
from texdistill.stages.evaluate import EVAL_FILE
from texdistill.storage import atomic_write_bytes, read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

ROW_FILE = "sweep_row.json"
EXPERTS_FILE = "sweep_experts.json"  # in each shared experts folder: how long its experts took
# options a row must not set: the sweep places every run folder and the shared experts/cache itself
PLACED = ("out", "experts_dir", "cache_dir", "resume", "force")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
SPLIT = "val"  # what rows are judged on unless they say "split": "test" (choices are made on held-out data)


def load_spec(path: str | Path) -> dict[str, Any]:
    """The spec file, checked: a known preset, known option names, row names usable as folder names."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read sweep spec {path}: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("rows"), dict) or not spec["rows"]:
        raise ConfigError(f"sweep spec {path} must be a JSON object with a non-empty \"rows\" object "
                          f"(row name → option values); see `texdistill sweep --help`")
    preset_values(spec.get("preset"))  # an unknown preset is an error naming the known ones
    for where, values in [("base", spec.get("base", {})), *spec["rows"].items()]:
        if not isinstance(values, dict):
            raise ConfigError(f"sweep spec {path}: '{where}' must be an object of option → value")
        refuse_unknown(values, known_options() | {"preset"}, f"sweep spec {path}, '{where}'")
        placed = sorted(k for k in values if k in PLACED)
        if placed:
            raise ConfigError(f"sweep spec {path}: '{where}' sets {', '.join(placed)}, which the sweep places")
        if where != "base" and not NAME.match(where):
            raise ConfigError(f"sweep row name '{where}' must be a folder name (letters, digits, _ . = + -)")
    return spec


def row_values(spec: dict[str, Any], row: str) -> dict[str, Any]:
    """preset (the row's own "preset", else the spec's) < base < row: the flat option values of one row (before
    the sweep places its folders)."""
    values = {k: v for k, v in spec["rows"][row].items() if k != "preset"}
    return {**preset_values(spec["rows"][row].get("preset", spec.get("preset"))), **spec.get("base", {}), **values}


def experts_folder(out: Path, values: dict[str, Any]) -> Path:
    """Where the experts of these values live: one folder per distinct expert configuration.

    The name hashes the options that differ from their defaults, so an option added to `texdistill experts`
    later does not rename (and retrain) the experts of a sweep made before it.
    """
    defaults = {**ExpertsConfig.defaults(), **ExpertsConfig.LEGACY}  # experts made before an option: its folder
    options = {k: v for k, v in build_config(ExpertsConfig, {**values, "out": "."}).to_dict().items()
               if k not in ExpertsConfig.RESUMABLE - {"num_experts"} and (k not in defaults or v != defaults[k])}
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return out / f"experts-{digest}"


def placed_values(cfg: SweepConfig, spec: dict[str, Any], row: str) -> dict[str, Any]:
    """A row's values with its run folder, its shared experts and the shared dataset cache."""
    values = row_values(spec, row)
    root = experts_folder(cfg.run_dir, values)
    return {**values, "out": str(cfg.run_dir / row), "experts_dir": str(root / "experts"),
            "cache_dir": str(cfg.run_dir / "cache"), "_experts_root": str(root)}


def timed(stage: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run a stage; its result, wall seconds and this process's CPU seconds (all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = stage()
    return result, {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}


def train_experts(cfg: ExpertsConfig) -> None:
    """Train the missing experts of a shared folder; the first (complete) training's time goes to sweep_experts.json."""
    path = cfg.run_dir / EXPERTS_FILE
    _, timing = timed(lambda: COMMANDS["experts"].run(cfg))
    if not path.exists():
        write_json(path, {**timing, "num_experts": cfg.num_experts, "epochs": cfg.epochs, "width": cfg.width})


def run_row(cfg: SweepConfig, spec: dict[str, Any], row: str) -> dict[str, Any]:
    """Experts (if missing), distill and evaluate one row; returns its sweep_row.json record."""
    values = placed_values(cfg, spec, row)
    run_dir = Path(values["out"])
    record_path = run_dir / ROW_FILE
    record = read_json(record_path) if record_path.exists() else {}
    if record.get("values") not in (None, _comparable(values)):
        raise ConfigError(f"sweep row '{row}' in {run_dir} was run with other values; remove that folder or "
                          f"rename the row")
    record.update(row=row, values=_comparable(values), changes=spec["rows"][row])
    root = Path(values.pop("_experts_root"))
    train_experts(build_config(ExpertsConfig, {**values, "out": str(root)}))
    record["experts_dir"] = root.name
    for stage in ("distill", "evaluate"):
        if stage in record and _finished(stage, run_dir):
            continue
        log.info("sweep row %s: %s", row, stage)
        stage_values = {"split": SPLIT, **values} if stage == "evaluate" else values
        _, record[stage] = timed(lambda: COMMANDS[stage].run(build_config(COMMANDS[stage].config, stage_values)))
        write_json(record_path, record)
    record["result"] = _result(run_dir)
    write_json(record_path, record)
    return record


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in values.items() if not k.startswith("_")}, sort_keys=True))


def _finished(stage: str, run_dir: Path) -> bool:
    if stage == "distill":
        return (run_dir / setfile.RESULT).exists()
    path = run_dir / EVAL_FILE
    return path.exists() and bool(read_json(path).get("complete"))


def _result(run_dir: Path) -> dict[str, Any]:
    """Accuracies per set (mean, std, models), wearability and seams per set, the learned η and the loss over
    the last tenth of the log."""
    results = read_json(run_dir / EVAL_FILE)
    records = [r for r in read_jsonl(run_dir / "log.jsonl", "distill") if "loss" in r and "skipped" not in r]
    tail = records[-max(1, len(records) // 10):]
    wear = results.get("wearability", {}).get("sets", {})
    seams = results.get("seams", {})
    def accuracies(sets: dict[str, Any]) -> dict[str, Any]:
        return {name: {k: s[k] for k in ("mean", "std", "models", "lr")} for name, s in sets.items()}

    return {"split": results.get("split", "test"), "sets": accuracies(results["sets"]),
            "architectures": {a: accuracies(sets) for a, sets in results.get("architectures", {}).items()},
            "wear": {name: {"mean": w["mean"], "min": w["min"]} for name, w in wear.items()},
            "seams": {name: {"ratio_max": max(c["ratio"] for c in s["classes"].values()),
                             "z_max": max(c["z"] for c in s["classes"].values()),
                             **({"edge_z_max": max(c["edge_z"] for c in s["classes"].values())}
                                if "edge_z" in s else {}),
                             **({"speckle": s["speckle"]} if "speckle" in s else {})} for name, s in seams.items()},
            "syn_lr": tail[-1]["syn_lr"] if tail else None,
            "loss": statistics.mean(r["loss"] for r in tail) if tail else None}


def _set_cell(s: dict[str, Any] | None, wear: dict[str, Any] | None, best: dict[str, Any] | None) -> str:
    """'mean ± std (n) · w wearability'; '≈' marks a distilled accuracy within the combined std of the best row's."""
    if not s:
        return ""
    cell = f"{100 * s['mean']:.1f}" + ("" if s.get("std") is None else f" ± {100 * s['std']:.1f}") + f" ({s['models']})"
    if best is not None and best is not s and None not in (s.get("std"), best.get("std")) \
            and abs(best["mean"] - s["mean"]) <= s["std"] + best["std"]:
        cell = "≈ " + cell
    return cell + (f" · w {wear['mean']:.2f}" if wear else "")


def table(records: list[dict[str, Any]], spec: dict[str, Any]) -> str:
    """The markdown table: one line per finished row."""
    sets = list(dict.fromkeys(name for r in records for name in r["result"]["sets"]))
    distilled = [r["result"]["sets"]["distilled"] for r in records if "distilled" in r["result"]["sets"]]
    best = max(distilled, key=lambda s: s["mean"], default=None)
    head = ["row", "changes", *sets, "wear min", "seam ratio max", "seam z max", "edge z max", "speckle", "η end",
            "loss end",
            "distill s", "eval s", "CPU s"]
    lines = [f"preset `{spec.get('preset')}`, base {json.dumps(spec.get('base', {}))}; accuracy on the validation "
             f"split (rows marked (test): on the test split): mean ± sample std over the models (n); ≈: within the "
             f"combined std of the best distilled row (not different); w: "
             f"wearability by the independent judges (mean over classes; wear min: the distilled set's worst class); "
             f"seams and edges (any straight row/column edge, robust z): the worst class of the distilled set; speckle: "
             f"its crops' high-frequency power share ÷ real images'; s: wall seconds, CPU s: process CPU seconds of "
             f"distill + evaluate", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        res = r["result"]
        cells = [r["row"] + ("" if res.get("split", "test") == "val" else " (test)"),
                 ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "(base)"]
        wear = res.get("wear", {})
        cells += [_set_cell(res["sets"].get(name), wear.get(name), best if name == "distilled" else None)
                  for name in sets]
        seam = res.get("seams", {}).get("distilled")
        cells += [f"{wear['distilled']['min']:.2f}" if "distilled" in wear else "",
                  f"{seam['ratio_max']:.2f}" if seam else "", f"{seam['z_max']:.1f}" if seam else "",
                  f"{seam['edge_z_max']:.1f}" if seam and "edge_z_max" in seam else "",
                  f"{seam['speckle']:.2f}" if seam and "speckle" in seam else ""]
        cells += [f"{res['syn_lr']:.3g}" if res["syn_lr"] else "", f"{res['loss']:.3f}" if res["loss"] else "",
                  f"{r['distill']['wall_s']:.0f}", f"{r['evaluate']['wall_s']:.0f}",
                  f"{r['distill']['cpu_s'] + r['evaluate']['cpu_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + _cross_table(records, sets)


def _cross_table(records: list[dict[str, Any]], sets: list[str]) -> str:
    """Rows × architectures other than the ConvNet (evaluate --models), if any row has them."""
    lines = [f"| {r['row']} | {arch} | " + " | ".join(_set_cell(table.get(name), None, None) for name in sets) + " |"
             for r in records for arch, table in r["result"].get("architectures", {}).items()]
    if not lines:
        return ""
    head = ["row", "architecture", *sets]
    return ("\nCross-architecture: the same sets, networks of other architectures trained on them\n\n"
            + "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(lines) + "\n")


def run(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Run every row of the spec (or those of --rows) in order; rewrite sweep.md/json after each."""
    spec = load_spec(cfg.spec)
    rows = cfg.row_list or list(spec["rows"])
    missing = [r for r in rows if r not in spec["rows"]]
    if missing:
        raise ConfigError(f"--rows names {', '.join(missing)}, not rows of {cfg.spec} ({', '.join(spec['rows'])})")
    for row in [] if cfg.table_only else rows:  # a row that gives options of the other mode: refused before any runs
        given = {*spec.get("base", {}), *spec["rows"][row]} - {"preset"}
        build_config(DistillConfig, {k: v for k, v in placed_values(cfg, spec, row).items() if k[0] != "_"}, given)
    for row in [] if cfg.table_only else rows:
        run_row(cfg, spec, row)
        _write_table(cfg, spec)  # the table so far
    return _write_table(cfg, spec)


def _write_table(cfg: SweepConfig, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """sweep.md and sweep.json from every finished row of the spec, in spec order."""
    records = []
    for row in spec["rows"]:
        path = cfg.run_dir / row / ROW_FILE
        record = read_json(path) if path.exists() else None
        # a row counts only if it ran with this spec's values (another spec may share the folder)
        if record and "result" in record and record["values"] == _comparable(placed_values(cfg, spec, row)):
            records.append({**record, "changes": spec["rows"][row]})
    experts_times = {r["experts_dir"]: read_json(p) for r in records
                     if (p := cfg.run_dir / r["experts_dir"] / EXPERTS_FILE).exists()}
    footer = "".join(f"\n{name}: {t['num_experts']} experts × {t['epochs']} epochs, width {t['width']}: "
                     f"{t['wall_s']:.0f} s wall, {t['cpu_s']:.0f} CPU s; rows "
                     f"{', '.join(r['row'] for r in records if r['experts_dir'] == name)}\n"
                     for name, t in experts_times.items())
    write_json(cfg.run_dir / "sweep.json", {"spec": spec, "rows": records, "experts": experts_times})
    atomic_write_bytes(cfg.run_dir / "sweep.md", (table(records, spec) + footer).encode())
    return records
