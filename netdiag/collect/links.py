"""Collector: links (not written yet)."""

NAME = "links"


def collect(ctx) -> dict:
    return {}
