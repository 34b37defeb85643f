"""Rules about lb."""
