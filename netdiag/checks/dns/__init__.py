"""Rules about dns."""
