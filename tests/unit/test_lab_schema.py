"""The topology JSON Schema (`netdiag lab schema`) describes every field, for editors."""

from netdiag.topology.schema import json_schema


def test_every_field_of_the_topology_schema_has_a_description():
    schema = json_schema()
    missing = []
    for where, model in [("Topology", schema), *schema["$defs"].items()]:
        for name, prop in model.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{where}.{name}")
    assert not missing, missing
    assert len(schema["$defs"]) >= 14  # every model of the schema was looked at
