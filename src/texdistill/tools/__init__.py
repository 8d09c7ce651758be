"""Around the method: the speed/memory bench, --dry-run estimates, knob sweeps, host-memory helpers."""
