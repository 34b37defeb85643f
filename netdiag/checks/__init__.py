"""The rule engine: api.py (vocabulary), registry.py (the list of rules), engine.py (running them)."""
