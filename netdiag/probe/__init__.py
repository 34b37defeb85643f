"""Opt-in active probes (`check --probe`): measure what the Snapshot can only suggest.

Three probes, each sent from inside a namespace of the snapshot to an address the snapshot
names, so nothing ever leaves for an address netdiag did not read on this host — except DNS
queries, which go to the namespace's own configured nameservers, exactly where its
applications send theirs:

* a DF ping sweep for the path MTU between pairs of namespaces (pmtu.py);
* a TCP connect to each published port (DNAT rule) and to its target (ports.py);
* one DNS query to each configured nameserver (dns.py).

`plan.plan` picks the targets from the snapshot (pure); `runner.measure` runs them in one
worker thread that enters each namespace in turn (scapy's routing table is process-wide, so
sweeps cannot run in parallel), and `runner.with_probes` returns the snapshot with the results
in `Snapshot.probes`. Rules turn those into evidence with `evidence.py`. Nothing is sent
unless `with_probes` or `measure` is called. This package file imports nothing, so that rules
can import `netdiag.findings.probes` without pulling in the planner (which imports rules).
"""

# A capture's bounds (`netdiag capture` and the TUI's path view alike): frames of the flow kept
# (--count), and how long its own traffic is awaited (--timeout). Here, in the package file
# that imports nothing, so that the CLI reads them without importing the capture.
CAPTURE_COUNT = 200
CAPTURE_WAIT_SECONDS = 10.0
