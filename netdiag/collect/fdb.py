"""Collector: fdb (not written yet)."""

NAME = "fdb"


def collect(ctx) -> dict:
    return {}
