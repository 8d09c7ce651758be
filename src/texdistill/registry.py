"""Every command, registered once: name → its config class, its entry point and its help line.

The command line (one sub-command each), `texdistill run`, the Python API and the sweep read this table. Entry
points are 'module:function' names imported when a command runs, so `texdistill --help` stays fast and this
module imports configs only (it sits below everything that runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from texdistill.commands import BenchConfig, ExportConfig, MockupConfig, ReportConfig, SweepConfig
from texdistill.config import CommonConfig, DistillConfig, EvalConfig, ExpertsConfig, PipelineConfig


@dataclass(frozen=True)
class Command:
    """One command: its config dataclass (which generates its flags), where its run(cfg) lives, its help line."""

    config: type
    entry: str  # 'module:function', imported when the command runs
    help: str
    # 'stage': works in a run folder, takes presets, --config and --dry-run, runs under torchrun;
    # 'tool': takes presets and --config, writes no run; 'folder': works on a finished run folder or a sweep's spec
    kind: str
    preset: str | None = None  # the preset it runs with when none is given

    def runner(self) -> Callable[[Any], Any]:
        """The command's run(cfg)."""
        module, function = self.entry.split(":")
        return getattr(importlib.import_module(module), function)

    def run(self, cfg: Any) -> Any:
        return self.runner()(cfg)


COMMANDS: dict[str, Command] = {
    "experts": Command(ExpertsConfig, "texdistill.stages.experts:run",
                       "train expert networks on real data and store their trajectories", "stage"),
    "distill": Command(DistillConfig, "texdistill.stages.distill:run",
                       "learn synthetic images or tileable class textures by trajectory matching", "stage"),
    "evaluate": Command(EvalConfig, "texdistill.stages.evaluate:run",
                        "train fresh networks on the distilled set; test accuracy vs real baselines", "stage"),
    "run": Command(PipelineConfig, "texdistill.pipeline:run",
                   "every stage with one set of options: experts, distill, evaluate, mock-ups, export, report", "stage"),
    "bench": Command(BenchConfig, "texdistill.tools.bench:run",
                     "time and peak memory of the gradient modes vs syn_steps (random data)", "tool", preset="demo"),
    "mockup": Command(MockupConfig, "texdistill.products.mockup:run",
                      "the class textures as fabric on a T-shirt, dress, scarf, tote bag and cushion (PNG)", "folder"),
    "export": Command(ExportConfig, "texdistill.products.export:run",
                      "a run's previews, contact sheet, evolution, print tiles (--print) and Wang tiles (--wang)",
                      "folder"),
    "report": Command(ReportConfig, "texdistill.products.report:run",
                      "RUN/report.html: a self-contained page of the run (opens offline)", "folder"),
    "sweep": Command(SweepConfig, "texdistill.tools.sweep:run",
                     "a knob study: distil + evaluate one run per row of a JSON spec; table of accuracy vs knobs",
                     "folder"),
}
# the training stages, whose configs a run folder's config.json holds one section each of
STAGES: dict[str, type[CommonConfig]] = {name: c.config for name, c in COMMANDS.items() if c.kind == "stage"}
