"""Rules about mtu."""
