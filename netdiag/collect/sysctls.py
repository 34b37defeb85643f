"""Collector: sysctls (not written yet)."""

NAME = "sysctls"


def collect(ctx) -> dict:
    return {}
