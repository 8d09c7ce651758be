"""`texdistill demo`: the whole pipeline on the embedded data with the 'demo' preset."""

from __future__ import annotations

import logging
import time

from texdistill import distill, evaluate, experts, mockup, report
from texdistill.config import (DistillConfig, EvalConfig, ExpertsConfig, MockupConfig, ReportConfig, build_config,
                               preset_values)

log = logging.getLogger(__name__)


def run_demo(quick: bool = False, out: str | None = None, device: str = "auto", seed: int = 0) -> dict:
    """Experts (if missing) → distillation → evaluation → mock-ups → report; returns the eval results."""
    values = preset_values("demo-quick" if quick else "demo")
    values.update(device=device, seed=seed)
    if out:
        values["out"] = out
    started = time.time()
    experts.run(build_config(ExpertsConfig, values))
    distill.run(build_config(DistillConfig, values))
    results = evaluate.run(build_config(EvalConfig, values))
    mockup.run(MockupConfig(run=values["out"]))
    page = report.run(ReportConfig(run=values["out"]))
    log.info("demo finished in %.1f min", (time.time() - started) / 60)
    print(f"report: {page}  (open it in a browser; PNGs in {values['out']}/textures/ and {values['out']}/mockups/)")
    return results
