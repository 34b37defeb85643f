"""Rules on exposure: what beyond the host reaches, against what the host's firewall says."""
