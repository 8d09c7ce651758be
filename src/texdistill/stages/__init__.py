"""The stages: each stage's run(cfg) owns its run folder (lock, resume, outputs, config.json) and calls the method."""
