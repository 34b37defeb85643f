"""Rules on flows: what the flow engine says of the flows that should work."""
