"""`texdistill demo`: the whole pipeline (`texdistill run`) on the embedded data with the 'demo' preset."""

from __future__ import annotations

from texdistill import pipeline
from texdistill.config import PipelineConfig, build_config
from texdistill.presets import preset_values


def run_demo(quick: bool = False, out: str | None = None, device: str = "auto", seed: int = 0) -> dict:
    """Experts (if missing) → distillation → evaluation → mock-ups → export → report; returns the eval results."""
    values = preset_values("demo-quick" if quick else "demo")
    values.update(device=device, seed=seed)
    if out:
        values["out"] = out
    return pipeline.run(build_config(PipelineConfig, values))
