"""Gradient modes vs syn_steps: seconds per iteration, peak memory, gradient differences (`texdistill bench`).

    python benchmarks/bench_modes.py                          # the demo preset's scale, syn_steps 10/20/40/80
    python benchmarks/bench_modes.py --steps 20,40,80 --device cuda --no-dsa ...

ImageSquawk-like texture scale (128-px crops of 256-px canvases, ConvNet-5 width 128, 10 classes, RGB):

    python benchmarks/bench_modes.py --texture --res 128 --canvas-size 2 --channels 3 --classes 10 \\
        --depth 5 --width 128 --steps 20,40,80 --device cuda

Every option of `texdistill bench --help` works here; the data are random (time and memory do not depend
on the values), so no dataset or experts are needed.
"""

import sys

from texdistill.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
