"""Collector: addresses (not written yet)."""

NAME = "addresses"


def collect(ctx) -> dict:
    return {}
