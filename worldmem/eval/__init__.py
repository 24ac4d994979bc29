"""worldmem.eval."""
