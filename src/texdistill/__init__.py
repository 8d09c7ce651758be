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

from texdistill._version import __version__ as __version__

__all__ = ["experts", "distill", "evaluate", "report", "run", "load"]


def _config(stage: str, preset: str | None, options: dict[str, Any]):
    from texdistill.config import build_config
    from texdistill.options import refuse_unknown
    from texdistill.presets import preset_values
    from texdistill.registry import COMMANDS

    config_class = COMMANDS[stage].config
    refuse_unknown(options, config_class.__dataclass_fields__, f"texdistill.{stage}() (`texdistill {stage} --help`)")
    return build_config(config_class, {**preset_values(preset), **options}, given=options)


def _run(command: str, cfg):
    from texdistill.registry import COMMANDS

    return COMMANDS[command].run(cfg)


def experts(preset: str | None = None, **options: Any) -> list[Path]:
    """Train the expert trajectories (`texdistill experts`); returns their files."""
    return _run("experts", _config("experts", preset, options))


def distill(preset: str | None = None, **options: Any):
    """Distil (`texdistill distill`); returns the learned set (ImageSet or TextureCanvas, on the CPU)."""
    cfg = _config("distill", preset, options)
    _run("distill", cfg)
    return load(cfg.out)[0]


def evaluate(preset: str | None = None, **options: Any) -> dict:
    """Evaluate the distilled set of `out` (`texdistill evaluate`); returns the results written to eval.json."""
    return _run("evaluate", _config("evaluate", preset, options))


def run(preset: str | None = None, **options: Any) -> dict:
    """Every stage (`texdistill run`): experts, distill, evaluate, mock-ups, export, report; the eval results."""
    return _run("run", _config("run", preset, options))


def report(run_dir: str | Path) -> Path:
    """Write RUN/report.html (`texdistill report RUN`); returns its path."""
    from texdistill.registry import COMMANDS

    return _run("report", COMMANDS["report"].config(run=str(run_dir)))


def load(run_dir: str | Path):
    """(synthetic set, metadata, pixel space) of a run folder's distilled set — e.g. to decode it:
    `space.to_uint8(synthetic.pixels, periodic=synthetic.periodic)` gives the PNGs' pixels."""
    from texdistill.method.setfile import load_result

    return load_result(run_dir)
