"""The nftables load balancer: Docker's IPVS behaviour rendered as one `ip netdiag_lb` table.

Per service port a chain `svc_<mark>_<proto><port>` DNATs to `numgen inc mod N map {...}` over
the active backends (round robin like IPVS's rr); a service without active backends refuses
connections (TCP reset, ICMP for UDP) from filter chains — reject is not allowed in nat chains —
like an IPVS fwmark service without real servers. Traffic to the VIP jumps there from `output`
(clients in this namespace) and `prerouting` (traffic routed through it); a published port
jumps there for any local address and is marked so `postrouting` masquerades it, so the reply
comes back through the host the client used (the routing mesh). The whole table is replaced in
one nft transaction, so a change never leaves a half-programmed service; established
connections keep their conntrack NAT binding, which is what makes a weight-0 backend drain.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from netdiag import helper
from netdiag.drivers.lb.model import ServiceVip

TABLE = "netdiag_lb"


def _service_chain(service: ServiceVip) -> list[str]:
    active = service.active
    targets = ", ".join(f"{i} : {b.address} . {b.port}" for i, b in enumerate(active))
    spread = f"numgen inc mod {len(active)} map {{ {targets} }}"
    body = [f"    meta l4proto {service.protocol} dnat ip to {spread}"] if active else []
    return [f"  chain {_chain(service)} {{", *body, "  }"]


def _chain(service: ServiceVip) -> str:
    return f"svc_{service.mark}_{service.protocol}{service.port}"


def _base_chain(name: str, kind: str, hook: str, priority: int, rules: list[str]) -> list[str]:
    return [f"  chain {name} {{",
            f"    type {kind} hook {hook} priority {priority}; policy accept;", *rules, "  }"]


def render(services: Sequence[ServiceVip]) -> str:
    """The nft script that replaces the table with exactly these services."""
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}"]
    if not services:
        return "\n".join(lines) + "\n"
    to_vip, published, masquerade, refuse = [], [], [], []
    for svc in services:
        match = f"ip daddr {svc.vip} {svc.protocol} dport {svc.port}"
        to_vip.append(f"    {match} jump {_chain(svc)}")
        reject = "reject with tcp reset" if svc.protocol == "tcp" else "reject"
        if not svc.active:
            refuse.append(f"    {match} {reject}")
        if svc.published_port:
            port = f"{svc.protocol} dport {svc.published_port} fib daddr type local"
            published.append(f"    {port} meta mark set {svc.mark} jump {_chain(svc)}")
            masquerade.append(f"    meta mark {svc.mark} masquerade")
            if not svc.active:
                refuse.append(f"    {port} {reject}")
    lines.append(f"table ip {TABLE} {{")
    for svc in services:
        lines += _service_chain(svc)
    lines += _base_chain("output", "nat", "output", -100, to_vip)
    lines += _base_chain("prerouting", "nat", "prerouting", -100, published + to_vip)
    lines += _base_chain("postrouting", "nat", "postrouting", 100, list(dict.fromkeys(masquerade)))
    for hook in ("input", "forward", "output"):
        lines += _base_chain(f"refuse_{hook}", "filter", hook, 0, refuse)
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply(services: Sequence[ServiceVip]) -> None:
    """Replace the table in the current thread's namespace (call inside netns.entered)."""
    with tempfile.NamedTemporaryFile("w", prefix="netdiag-lb-", suffix=".nft") as file:
        file.write(render(services))
        file.flush()
        helper.run(["nft", "-f", file.name])
