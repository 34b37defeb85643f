"""The flow engine: what happens to a packet, from a Snapshot alone.

packet.py (the packet, and a trace of hops and steps ending in a disposition), routing.py
(policy rules and tables), netfilter.py (every table of a hook, both iptables backends, NAT),
walk.py (the path through namespaces, veth pairs, bridges and VXLAN, and the reply's way
back), expected.py (the flows that should work), names.py (DST as SRC resolves it),
output.py (text and JSON), probe.py (`path --probe`).
"""
