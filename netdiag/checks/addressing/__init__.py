"""Rules about addressing."""
