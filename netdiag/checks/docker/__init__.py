"""Rules that compare Docker's intent (Snapshot.docker) with the kernel's state."""
