"""Collector: ipvs (not written yet)."""

NAME = "ipvs"


def collect(ctx) -> dict:
    return {}
