"""What a distillation leaves in its run folder, and how a run folder is continued.

Never losing a run: every --ckpt-every iterations the whole state (method/state.py) goes to one safetensors
file, written atomically, then the result and its PNGs; re-running the same command continues it bit-exactly.
Snapshots (every --snapshot-every iterations) keep the evolution; log.jsonl gets one line per --log-every
iterations and one per skipped step.
"""

from __future__ import annotations

import logging
from functools import partial

from texdistill import distributed
from texdistill.config import DistillConfig
from texdistill.errors import CheckpointError, NumericalError
from texdistill.method.setfile import RESULT, SNAPSHOTS
from texdistill.method.state import DistillState
from texdistill.stages.rundir import continue_existing, discard, record_config, require_same_options
from texdistill.storage import JsonlLog, load_tensors, save_png, save_tensors

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"


class DistillOutputs:
    """The run folder of one distillation: checkpoint, result + PNGs, snapshots, log.jsonl."""

    def __init__(self, cfg: DistillConfig, result_meta: dict):
        self.cfg = cfg
        self.run_dir = cfg.run_dir
        self.result_meta = result_meta  # what the result file says besides the set: model, data, expert lr, …
        self.log = JsonlLog(self.run_dir / "log.jsonl", "distill")
        self._grad_norms: list[float] = []

    def open(self, state: DistillState) -> None:
        """Continue a checkpoint made with the same options, refuse one made with others (unless --force)."""
        checkpoint = self.run_dir / CHECKPOINT
        if continue_existing(self.cfg, "distillation checkpoint", checkpoint.exists()):
            tensors, meta = load_tensors(checkpoint)
            if meta.get("kind") != "distill-checkpoint":
                raise CheckpointError(f"{checkpoint} is a {meta.get('kind')} file, not a distillation checkpoint; "
                                      f"move it away or add --force to start over")
            require_same_options(self.cfg, "the distillation", meta["config"])
            state.load(tensors, meta, checkpoint)
            log.info("resuming %s at iteration %d", self.run_dir, state.iteration)
            event = {"event": "resume", "it": state.iteration}
        else:
            result = self.run_dir / RESULT
            if result.exists() and not self.cfg.force:  # written only after a checkpoint: someone removed that
                raise CheckpointError(f"{self.run_dir} holds a distilled set ({RESULT}) but no {CHECKPOINT} to "
                                      f"continue it; use another --out, or add --force to replace it")
            event = {"event": "start"}
        distributed.barrier()  # under torchrun: every rank has read the folder before rank 0 changes it
        if distributed.is_main():
            if event["event"] == "start":
                # a fresh start: nothing of an earlier distillation in this folder may mix with this one
                discard([checkpoint, result, *(self.run_dir / SNAPSHOTS).glob("it_*.safetensors")])
            record_config(self.cfg, "distill")
            self.log.write(**event)
        distributed.barrier()

    def record(self, record: dict, iteration: int, seconds: float) -> None:
        """Write every --log-every-th record and every skipped one, with gradient-norm stats since the last line."""
        if "skipped" not in record:
            self._grad_norms.append(record["grad_norm"])
        if iteration % self.cfg.log_every and "skipped" not in record:
            return
        if self._grad_norms:
            record.update(grad_norm_mean=sum(self._grad_norms) / len(self._grad_norms),
                          grad_norm_max=max(self._grad_norms))
        if distributed.is_main():
            self.log.write(**record, seconds=round(seconds, 2))
        self._grad_norms.clear()

    def save_checkpoint(self, state: DistillState) -> None:
        if not distributed.is_main():
            return  # every rank holds the same state; rank 0 writes it
        meta = {"kind": "distill-checkpoint", **state.metadata(), "config": self.cfg.to_dict(),
                "synthetic": state.synthetic.settings()}
        save_tensors(self.run_dir / CHECKPOINT, state.tensors(), meta)

    def save_snapshot(self, state: DistillState) -> None:
        """The synthetic set as displayable uint8, for the evolution view."""
        if not distributed.is_main():
            return
        synthetic = state.synthetic
        save_tensors(self.run_dir / SNAPSHOTS / f"it_{state.iteration:06d}.safetensors",
                     {"pixels": synthetic.displayable(state.space), "labels": synthetic.labels},
                     {"kind": "snapshot", "iteration": state.iteration, "synthetic": synthetic.settings()})

    def save_result(self, state: DistillState) -> None:
        """The learned set (float tensors + η) and its PNG previews."""
        if not distributed.is_main():
            return
        state.require_finite()
        result, space = state.synthetic, state.space
        meta = {"kind": "synthetic-set", "iteration": state.iteration, "synthetic": result.settings(),
                "syn_lr": float(state.syn_lr), **self.result_meta}
        tensors = {**result.state_tensors(), **{f"space.{k}": v for k, v in space.state_dict().items()}}
        save_tensors(self.run_dir / RESULT, tensors, meta)
        for label, name in enumerate(meta["class_names"]):
            for relative, image in result.previews(label, name, partial(result.displayable, space)).items():
                save_png(self.run_dir / relative, image)

    def stop_diverged(self, state: DistillState, record: dict) -> None:
        """Save the good state (finite by construction) and stop with what to change."""
        first = state.iteration - state.bad_steps + 1
        state.bad_steps = 0  # a resumed run gets max_bad_steps fresh tries
        self.save_checkpoint(state)
        self.save_result(state)
        raise NumericalError(f"distillation diverged: {self.cfg.max_bad_steps} steps in a row with a non-finite loss "
                             f"or gradient (iterations {first}–{state.iteration}), even after lowering the pixel lr "
                             f"to {record['lr_img']:.3g}; the last good state is saved in {self.run_dir / CHECKPOINT}: "
                             f"re-run with a smaller --lr-img and/or --lr-lr to continue it")

