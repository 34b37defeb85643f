"""Collector: neighbours (not written yet)."""

NAME = "neighbours"


def collect(ctx) -> dict:
    return {}
