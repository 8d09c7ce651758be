"""A timing-only expert buffer in the reference's own format, from the reference's own network.

Run by peer_bench.py with the reference's venv python, in the temporary copy of mtt-distillation (so `utils` is
its utils.py). buffer.py saves `trajectories`: a list of experts, each a list of snapshots, each the list of
`[p.detach().cpu() for p in net.parameters()]`, as <buffer_path>/<dataset>/<model>/replay_buffer_<n>.pt; this
writes the same structure with a random walk instead of training (time and memory do not depend on the values).

    python make_buffer.py OUT_DIR --experts 2 --snapshots 5 --channels 1 --res 28 --classes 10
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.getcwd())  # the reference copy
from utils import get_network  # noqa: E402  (the reference's utils.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--experts", type=int, default=2)
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--res", type=int, default=28)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()

    trajectories = []
    for _ in range(args.experts):
        net = get_network("ConvNet", args.channels, args.classes, (args.res, args.res)).to("cpu")
        params = [p.detach().cpu().clone() for p in net.parameters()]
        snapshots = [params]
        for _ in range(args.snapshots - 1):
            params = [p + 0.01 * torch.randn_like(p) for p in params]
            snapshots.append(params)
        trajectories.append(snapshots)
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "replay_buffer_0.pt")
    torch.save(trajectories, path)
    n = sum(p.numel() for p in trajectories[0][0])
    print(f"wrote {path}: {args.experts} experts × {args.snapshots} snapshots of {n} parameters")


if __name__ == "__main__":
    main()
