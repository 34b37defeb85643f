"""Encrypted overlays: ESP transport mode with rfc4106(gcm(aes)) between the hosts' VTEPs.

Whether the kernel can do it is asked the only reliable way — by adding a throw-away ESP state
with that algorithm in the host namespace and deleting it again; a kernel without ESP or
AES-GCM ("Requested AEAD algorithm not found", like this project's CI kernel) refuses. An
encrypted network is then refused with "kernel lacks ESP/AES-GCM" — never silently plaintext.
pyroute2 0.9 has no xfrm API, so the probe runs `ip xfrm` as a helper inside the namespace.
Programming the per-peer states and policies is not implemented yet (it cannot be verified on
this kernel); on a kernel that has ESP the driver says so instead of pretending.
"""

from __future__ import annotations

from netdiag import helper, netns
from netdiag.errors import CollectError, DriverError, KernelFeatureMissing

AEAD = "rfc4106(gcm(aes))"
PROBE_KEY = "0x" + "11" * 20  # 16-byte key + 4-byte salt
PROBE_SPI = "0xd0c4e3"  # Docker marks its xfrm states 0xD0C4E3; the probe borrows the number
PROBE_ADDRESSES = ("192.0.2.1", "192.0.2.2")  # TEST-NET-1: a state for them never matches


def kernel_has_esp_gcm(host: str) -> bool:
    src, dst = PROBE_ADDRESSES
    state = ["src", src, "dst", dst, "proto", "esp", "spi", PROBE_SPI]
    with netns.entered(host):
        try:
            helper.run(["ip", "xfrm", "state", "add", *state, "mode", "transport",
                              "aead", AEAD, PROBE_KEY, "128"])
        except CollectError:
            return False
        helper.run(["ip", "xfrm", "state", "delete", *state])
    return True


def require(host: str) -> None:
    """Refuse an encrypted network unless ESP with AES-GCM can actually be programmed."""
    if not kernel_has_esp_gcm(host):
        raise KernelFeatureMissing("kernel lacks ESP/AES-GCM: refusing to create an encrypted "
                                   "overlay network that would carry plaintext")
    raise DriverError("encrypted overlay: the kernel has ESP/AES-GCM but netdiag does not "
                      "program ESP states yet; refusing rather than sending plaintext")
