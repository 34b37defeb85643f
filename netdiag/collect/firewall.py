"""Collector: firewall (not written yet)."""

NAME = "firewall"


def collect(ctx) -> dict:
    return {}
