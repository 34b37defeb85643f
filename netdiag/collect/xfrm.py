"""Collector: xfrm (not written yet)."""

NAME = "xfrm"


def collect(ctx) -> dict:
    return {}
