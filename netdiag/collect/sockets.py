"""Collector: sockets (not written yet)."""

NAME = "sockets"


def collect(ctx) -> dict:
    return {}


def resolve_owners(states):
    return states
