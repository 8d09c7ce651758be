"""The method: what a researcher changes — networks, augmentation, the synthetic set and its file format,
trajectory matching, the distillation loop, experts, evaluation, judges and the recognition step."""
