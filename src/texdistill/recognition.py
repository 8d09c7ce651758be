"""The recognition term: every sample of the set (every crop of a texture) should read as its class.

Trajectory matching alone asks the student's *training* on the set to resemble the experts'; on centred
objects (Fashion-MNIST) random-offset crops of a canvas cannot do that, and the set learns little (README,
"Why textures lag"). This term adds, with weight β (`--recognition-weight`), the cross-entropy of trained
networks — the experts at their last stored epoch, `--recognition-experts` of them drawn per iteration — on
DSA views of random samples of the set (`--recognition-crops` wrap-around crops per canvas), so the pixels
also move towards what trained networks recognise as the class, at every offset:

    L_total = L_match + β · mean_e CE(f_{θ*_e}(DSA(crops)), class)

Its gradient to the pixels is one backward pass through those networks (no student unroll). The networks
it uses take part in the distillation, so they are not evidence that it worked; the judges are (judges.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from texdistill.matching import Student
from texdistill.models import classification_loss
from texdistill.synthetic import SyntheticSet


@dataclass
class RecognitionTerm:
    """β and the trained networks (flat parameter vectors) whose recognition of the set's samples is rewarded."""

    weight: float
    networks: list[torch.Tensor]  # (P,) each: every expert at its last epoch
    models_per_step: int  # how many of them one iteration uses
    crops: int  # samples per class per iteration (crops per canvas; image sets: images per class)

    def gradient(self, student: Student, synthetic: SyntheticSet, seed: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean cross-entropy, its gradient to the pixels × β) on DSA views of the draw `seed`."""
        pick = torch.randperm(len(self.networks), generator=generator)[:self.models_per_step].tolist()
        draw = synthetic.draw(seed, per_class=self.crops)
        with torch.enable_grad():
            view = student.view(synthetic.take(draw)[0], seed)
            labels = synthetic.labels[draw.index.to(synthetic.labels.device)]
            loss = sum(classification_loss(student.flat.forward(self.networks[i], view), labels) for i in pick) / len(pick)
            grad, = torch.autograd.grad(loss, synthetic.pixels)
        return loss.detach(), self.weight * grad
