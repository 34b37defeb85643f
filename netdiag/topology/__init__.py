"""Describing a lab, apart from building it: the topology YAML validated into typed models
(schema.py), the plan of steps that builds it (plan.py), and the journal a built lab keeps of
what it made (journal.py). Pure or read-only, so the collectors can read a lab's intent without
the builder; building and tearing down is netdiag/lab/'s.
"""
