"""Rules about forwarding."""
