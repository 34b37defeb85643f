"""Rules about firewall."""
