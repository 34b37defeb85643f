"""Collector: rules (not written yet)."""

NAME = "rules"


def collect(ctx) -> dict:
    return {}
