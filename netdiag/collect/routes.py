"""Collector: routes (not written yet)."""

NAME = "routes"


def collect(ctx) -> dict:
    return {}
