"""Collector: nftables (not written yet)."""

NAME = "nftables"


def collect(ctx) -> dict:
    return {}
