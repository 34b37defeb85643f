"""Collector: dns (not written yet)."""

NAME = "dns"


def collect(ctx) -> dict:
    return {}
