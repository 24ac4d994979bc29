"""worldmem.memory."""
