"""What a diagnosis reports, on the floor of the layers: findings with their evidence
(finding.py) and severity (severity.py), the rule records and what configures a run
(rule.py), repair plans and their steps (repair.py), and probe results as evidence
(probes.py). Records only: nothing here reads or writes the kernel, so rules, the drivers'
checks, the TUI and the output formats share them.
"""
