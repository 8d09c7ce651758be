"""`texdistill run`: experts → distill → evaluate → mock-ups → export → report with one set of options.

While the distillation runs, RUN/report.html is rewritten at every checkpoint and reloads itself in the
browser (a banner says so), so the textures can be watched as they grow; the final report replaces it.

Each stage is the stage's own run() on the options it has, so `run` resumes like the stages do: finished
experts are skipped, the distillation continues from its checkpoint, the evaluation from its last model.
`texdistill demo` is `run --preset demo` on the embedded data.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

from texdistill import distributed
from texdistill.commands import ExportConfig, MockupConfig, ReportConfig
from texdistill.config import PipelineConfig, build_config
from texdistill.products import report
from texdistill.registry import COMMANDS
from texdistill.stages import distill

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig) -> dict:
    """Every stage on cfg's options; returns the evaluation results and prints where the report is."""
    values = {**cfg.to_dict(), "resume": cfg.resume, "force": cfg.force}
    started = time.time()
    stage = {name: build_config(COMMANDS[name].config, values) for name in ("experts", "distill", "evaluate")}
    COMMANDS["experts"].run(stage["experts"])
    # the report is rewritten at every checkpoint, so a long run can be watched in the browser
    distill.run(stage["distill"], on_checkpoint=partial(report.run, ReportConfig(run=cfg.out), live=True))
    results = COMMANDS["evaluate"].run(stage["evaluate"])
    if distributed.is_main():
        COMMANDS["mockup"].run(MockupConfig(run=cfg.out))
        COMMANDS["export"].run(ExportConfig(run=cfg.out, print=cfg.texture))
        page = COMMANDS["report"].run(ReportConfig(run=cfg.out))
        log.info("finished in %.1f min", (time.time() - started) / 60)
        print(f"report: {page}  (open it in a browser; PNGs in {Path(cfg.out) / 'textures'}, "
              f"{Path(cfg.out) / 'mockups'} and {Path(cfg.out) / 'contact_sheet.png'})")
    return results
