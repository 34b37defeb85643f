"""The overlay driver: VXLAN networks spanning host namespaces, like Docker's swarm overlay.

`options` parses Docker-style options, `dataplane` builds each host's overlay namespace (br0,
vxlan0, FDB and neighbour entries), `links` plugs containers, `gateway` is docker_gwbridge,
`controlplane` delivers endpoint joins and leaves to every host, `encryption` refuses what the
kernel cannot encrypt, `check` compares the kernel with the store, `driver` ties them together.
"""

from netdiag.drivers.overlay.driver import OverlayDriver

DRIVER = OverlayDriver

__all__ = ["DRIVER", "OverlayDriver"]
