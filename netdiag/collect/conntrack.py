"""Collector: conntrack (not written yet)."""

NAME = "conntrack"


def collect(ctx) -> dict:
    return {}
