"""worldmem.data."""
