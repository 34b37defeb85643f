"""The rule engine: api.py (vocabulary), finding.py (what rules report), registry.py (the list
of rules), engine.py (running them)."""
