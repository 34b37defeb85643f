"""Rules about overlay."""
