"""netdiag: inspect, diagnose, reproduce and repair container networking on Linux."""

__version__ = "0.1.0"
