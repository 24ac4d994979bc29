"""worldmem.diffusion."""
