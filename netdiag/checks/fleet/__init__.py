"""Rules that only a fleet snapshot (many machines, netdiag/fleet/) can judge."""
