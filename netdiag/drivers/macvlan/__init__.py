"""The macvlan driver: `options` (parent, mode, MTU), `parent` (given, 802.1q or internal) and
`driver` (children created inside the sandboxes, and the CHECK verb)."""

from netdiag.drivers.macvlan.driver import MacvlanDriver

DRIVER = MacvlanDriver

__all__ = ["DRIVER", "MacvlanDriver"]
