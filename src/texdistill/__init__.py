"""texdistill: dataset distillation by Matching Training Trajectories, with tileable class textures.

The Python API takes the same options as the command line (as keyword arguments, `--lr-img` → `lr_img`),
after an optional preset, and returns objects instead of printing:

    import texdistill
    texdistill.experts(preset="demo", out="runs/nb")                  # → paths of the expert trajectories
    canvas = texdistill.distill(preset="demo", out="runs/nb")        # → the learned SyntheticSet
    results = texdistill.evaluate(preset="demo", out="runs/nb")      # → the contents of eval.json
    page = texdistill.report("runs/nb")                              # → path of report.html

`texdistill.run(...)` does all stages at once, like `texdistill run`. Errors are TexdistillError subclasses
whose message names the fix. Nothing heavy is imported until a function is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"
__all__ = ["experts", "distill", "evaluate", "report", "run", "load"]


def _config(stage: str, preset: str | None, options: dict[str, Any]):
    from texdistill.config import STAGES, build_config
    from texdistill.options import refuse_unknown
    from texdistill.presets import preset_values

    config_class = STAGES[stage]
    refuse_unknown(options, config_class.__dataclass_fields__, f"texdistill.{stage}() (`texdistill {stage} --help`)")
    return build_config(config_class, {**preset_values(preset), **options}, given=options)


def experts(preset: str | None = None, **options: Any) -> list[Path]:
    """Train the expert trajectories (`texdistill experts`); returns their files."""
    from texdistill.method import experts as stage

    return stage.run(_config("experts", preset, options))


def distill(preset: str | None = None, **options: Any):
    """Distil (`texdistill distill`); returns the learned set (ImageSet or TextureCanvas, on the CPU)."""
    from texdistill.method import distill as stage

    cfg = _config("distill", preset, options)
    stage.run(cfg)
    return load(cfg.out)[0]


def evaluate(preset: str | None = None, **options: Any) -> dict:
    """Evaluate the distilled set of `out` (`texdistill evaluate`); returns the results written to eval.json."""
    from texdistill.method import evaluate as stage

    return stage.run(_config("evaluate", preset, options))


def run(preset: str | None = None, **options: Any) -> dict:
    """Every stage (`texdistill run`): experts, distill, evaluate, mock-ups, export, report; the eval results."""
    from texdistill import pipeline

    return pipeline.run(_config("run", preset, options))


def report(run_dir: str | Path) -> Path:
    """Write RUN/report.html (`texdistill report RUN`); returns its path."""
    from texdistill.commands import ReportConfig
    from texdistill.products import report as stage

    return stage.run(ReportConfig(run=str(run_dir)))


def load(run_dir: str | Path):
    """(synthetic set, metadata, pixel space) of a run folder's distilled set — e.g. to decode it:
    `space.to_uint8(synthetic.pixels, periodic=synthetic.periodic)` gives the PNGs' pixels."""
    from texdistill.method.setfile import load_result

    return load_result(run_dir)
