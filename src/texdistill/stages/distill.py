"""`texdistill distill`: the distillation loop in its run folder — lock, resume, step, record, snapshot, checkpoint.

The algorithm (draw a problem, match, update) is method/distill.py's `Distiller.step()`; what the run folder
holds and how it is continued is stages/outputs.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import DistillConfig
from texdistill.method.distill import Distiller
from texdistill.method.setfile import RESULT
from texdistill.stages.outputs import CHECKPOINT, DistillOutputs
from texdistill.stages.rundir import RunLock, continue_existing

log = logging.getLogger(__name__)


def run(cfg: DistillConfig, on_checkpoint: Callable[[], None] | None = None) -> Path:
    """Distil until cfg.iterations (resuming a checkpoint), then write the results; returns the result file.

    `on_checkpoint` is called after every checkpoint, once its result is written (`texdistill run` refreshes
    the live report with it).
    """
    # --resume with nothing to resume: stop before the data is decoded (and cached) or anything is created
    continue_existing(cfg, "distillation checkpoint", (cfg.run_dir / CHECKPOINT).exists())
    distiller = Distiller(cfg)
    state = distiller.state
    outputs = DistillOutputs(cfg, result_meta(distiller))
    with RunLock(cfg.run_dir, "distill"):
        outputs.open(state)
        if state.iteration == 0:
            outputs.save_snapshot(state)
        bar = tqdm(total=cfg.iterations, initial=state.iteration, desc="distill", unit="it", dynamic_ncols=True,
                   disable=not distributed.is_main())
        started = time.time()
        while state.iteration < cfg.iterations:
            record = distiller.step()
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", syn_lr=f"{record['syn_lr']:.2e}")
            outputs.record(record, state.iteration, time.time() - started)
            if state.bad_steps >= cfg.max_bad_steps:
                outputs.stop_diverged(state, record)
            if state.iteration % cfg.snapshot_every == 0:
                outputs.save_snapshot(state)
            if state.iteration % cfg.ckpt_every == 0 or state.iteration == cfg.iterations:
                outputs.save_checkpoint(state)
                outputs.save_result(state)
                if on_checkpoint is not None and distributed.is_main():
                    on_checkpoint()
        bar.close()
    log.info("distilled %d iterations; results in %s", state.iteration, cfg.run_dir)
    return cfg.run_dir / RESULT


def result_meta(distiller: Distiller) -> dict:
    """What the result file says besides the set: the experts' model and lr, the data, the recognisers."""
    cfg, bank, dataset = distiller.cfg, distiller.bank, distiller.dataset
    return {"model": bank.spec.to_dict(), "dataset": dataset.name, "class_names": dataset.class_names,
            "val_fraction": cfg.val_fraction, "expert_lr": float(bank.metadata["lr"]),
            "recognizers": [cfg.recognizers] if cfg.recognition_lr else []}
