"""The rules netdiag's own network drivers report from their `check()` — `netdiag net check`,
`lab status` and the plugin — as ordinary findings, each with its documentation.

They sit beside the rule engine's rules in one catalogue (netdiag/checks/registry.py), so every
code has one owner and `netdiag explain CODE` documents each; the codes ND96x are theirs.
"""

from __future__ import annotations

from netdiag.findings.finding import Severity
from netdiag.findings.rule import Rule

DEVICE_MISSING = Rule("ND961", "driver-device-missing", Severity.ERROR,
                      "a device the network driver created is gone", doc="""
What it finds
    A bridge, veth end, macvlan or VXLAN device that a netdiag driver created for a network or
    an endpoint, recorded in the drivers' store, is no longer in its namespace.

Why it matters
    The endpoint has no way onto its network: the container or lab node is cut off.

Example
    ND961 driver-device-missing  lab/web: eth0
      eth0 (endpoint web) is missing from lab/web

Repair
    Manual: reconnect the endpoint (`netdiag net disconnect`, then `net connect`), which makes
    the device again from what the store holds.
""")

MTU_DIFFERS = Rule("ND962", "driver-mtu-differs", Severity.WARNING,
                   "a device's MTU differs from the network's MTU option", doc="""
What it finds
    A device of a netdiag network whose MTU is not the MTU the network was created with (the
    `com.docker.network.driver.mtu` option, or the overlay's MTU less the VXLAN overhead).

Why it matters
    Packets that fit one end of a link and not the other are dropped silently; TCP stalls once
    it sends full-sized segments.

Example
    ND962 driver-mtu-differs  lab/web: eth0
      eth0 (endpoint web) has MTU 1400, the network's is 1500

Repair
    Safe: set the device's MTU back to the network's.
""")

ADDRESS_MISSING = Rule("ND963", "driver-address-missing", Severity.ERROR,
                       "an address the network driver configured is gone", doc="""
What it finds
    An endpoint's or a bridge's address, given by the drivers' IPAM and recorded in the store,
    is no longer configured on its device.

Why it matters
    Without its address the endpoint neither answers nor reaches anything on the network; a
    bridge without its gateway address leaves every endpoint without a gateway.

Example
    ND963 driver-address-missing  lab/web: eth0
      eth0 (endpoint web) lacks its address 10.0.9.2/24

Repair
    Manual: `ip address add ADDRESS dev DEVICE` in the namespace, as the finding prints.
""")

RULE_MISSING = Rule("ND964", "driver-firewall-rule-missing", Severity.ERROR,
                    "an iptables rule the network driver wrote is gone", doc="""
What it finds
    A masquerade, isolation or published-port rule that a netdiag driver wrote for a network
    is missing from the host namespace's iptables.

Why it matters
    Without it traffic leaves unmasqueraded, networks stop being isolated, or a published port
    stops answering.

Example
    ND964 driver-firewall-rule-missing  lab/host: nat/POSTROUTING
      -s 10.0.9.0/24 ! -o br-1a2b3c -j MASQUERADE is missing

Repair
    Safe: add the rule again where the driver puts it.
""")

DEVICE_DOWN = Rule("ND965", "driver-device-down", Severity.ERROR,
                   "a device the network driver brought up is down", doc="""
What it finds
    A device of a netdiag network (a bridge, an endpoint's interface, a sandbox's loopback)
    that the driver brought up is administratively down.

Why it matters
    A down device passes no packets: everything behind it is unreachable.

Example
    ND965 driver-device-down  lab/c1: lo
      lo (sandbox) is down

Repair
    Safe: bring the device up.
""")

FDB_MISSING = Rule("ND966", "overlay-fdb-missing", Severity.ERROR,
                   "a remote overlay endpoint has no permanent FDB or neighbour entry", doc="""
What it finds
    A remote endpoint of a netdiag overlay network (in the drivers' store, on another host)
    for which the local VXLAN device has no permanent forwarding entry towards its VTEP, or no
    permanent neighbour entry for its address.

Why it matters
    The overlay's control plane programs these entries instead of flooding and learning: without
    them frames for that endpoint go nowhere and its address is never resolved.

Example
    ND966 overlay-fdb-missing  lab/host1 network petnet: 02:42:0a:00:09:03
      remote endpoint 10.0.9.3 (02:42:0a:00:09:03) on VTEP 10.99.0.2 has no FDB entry on vxlan0

Repair
    Safe: append the FDB entry and replace the neighbour entry, as the control plane would.
""")

DRIVER_RULES = (DEVICE_MISSING, MTU_DIFFERS, ADDRESS_MISSING, RULE_MISSING, DEVICE_DOWN,
                FDB_MISSING)
