"""worldmem.models."""
