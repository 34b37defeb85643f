"""What a namespace's load balancer serves: services, each with a VIP and weighted backends.

Weight 0 means draining: the backend gets no new connections while established ones carry on
(their NAT binding lives in conntrack), which is how Docker removes a task — weight 0 first, then
delete. Marks start at 256 like Docker's fwmark services.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from netdiag.errors import UsageError

FIRST_MARK = 256
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class Backend:
    address: str
    port: int
    weight: int = 1  # 0: draining


@dataclass(frozen=True, slots=True)
class ServiceVip:
    name: str
    vip: str
    port: int  # the service port clients use on the VIP
    backends: tuple[Backend, ...] = ()
    protocol: str = "tcp"
    mark: int = FIRST_MARK  # identifies the service in the kernel (fwmark, nft mark)
    published_port: int = 0  # routing mesh: reachable on this port through every host

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"service {self.name}: protocol must be tcp or udp, "
                             f"not {self.protocol!r}")

    @property
    def active(self) -> tuple[Backend, ...]:
        return tuple(b for b in self.backends if b.weight > 0)

    def drained(self, address: str) -> ServiceVip:
        """The same service with the backend at `address` draining (weight 0)."""
        return replace(self, backends=tuple(replace(b, weight=0) if b.address == address else b
                                            for b in self.backends))

    def without(self, address: str) -> ServiceVip:
        return replace(self, backends=tuple(b for b in self.backends if b.address != address))
