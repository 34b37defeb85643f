"""Rules that compare Podman's intent (its engines in Snapshot.docker) with netavark's work."""
