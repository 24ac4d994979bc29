"""worldmem.interactive."""
