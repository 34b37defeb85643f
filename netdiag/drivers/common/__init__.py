"""Code the drivers share (none of them imports another driver's internals)."""
