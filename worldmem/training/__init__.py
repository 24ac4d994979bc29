"""worldmem.training."""
