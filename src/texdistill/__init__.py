"""texdistill: dataset distillation by Matching Training Trajectories, with tileable class textures."""

__version__ = "0.1.0"
