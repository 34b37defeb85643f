"""One etcd endpoint, reached through its HTTP gateway (etcd3gw), with every failure of it
translated here, once, into StoreUnavailable: nothing above this module sees etcd3gw's or
requests' exceptions. The fleet's keys (netdiag/fleet/store.py) and the drivers' store on etcd
(netdiag/store/etcd.py) both talk to etcd through it."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from netdiag.errors import EXIT_COLLECT, NetdiagError, UsageError

DEFAULT_PORT = 2379


class StoreUnavailable(NetdiagError):
    """etcd did not answer, or answered with an error."""

    exit_code = EXIT_COLLECT


def parse_url(url: str) -> tuple[str, str, int]:
    """`http://HOST:PORT`, `https://...`, `etcd://HOST:PORT` or `HOST[:PORT]` → (protocol,
    host, port)."""
    text = url if "://" in url else f"http://{url}"
    parts = urlsplit(text)
    scheme = {"etcd": "http", "http": "http", "https": "https"}.get(parts.scheme)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        port = -1
    if scheme is None or not parts.hostname or port <= 0 or parts.path not in ("", "/"):
        raise UsageError(f"--etcd {url!r}: expected http://HOST:PORT (or HOST:PORT)")
    return scheme, parts.hostname, port


@dataclass(frozen=True, slots=True)
class EtcdAccess:
    """How netdiag proves itself to etcd: TLS files (a CA to trust, a client certificate and
    its key) and etcd's user/password auth. The password comes from a file or the
    environment, never from a command line (`ps` shows every process's)."""

    cacert: str = ""
    cert: str = ""
    key: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ, cacert: str = "",
                         cert: str = "", key: str = "", password_file: str = "") -> EtcdAccess:
        """The files given, else NETDIAG_ETCD_CACERT/_CERT/_KEY; the user from
        NETDIAG_ETCD_USER, its password from `password_file` or NETDIAG_ETCD_PASSWORD."""
        password = env.get("NETDIAG_ETCD_PASSWORD", "")
        if password_file:
            try:
                password = Path(password_file).read_text().rstrip("\n")
            except OSError as exc:
                raise UsageError(f"--etcd-password-file {password_file}: cannot read: "
                                 f"{exc.strerror}") from None
        access = cls(cacert=cacert or env.get("NETDIAG_ETCD_CACERT", ""),
                     cert=cert or env.get("NETDIAG_ETCD_CERT", ""),
                     key=key or env.get("NETDIAG_ETCD_KEY", ""),
                     user=env.get("NETDIAG_ETCD_USER", ""), password=password)
        if bool(access.cert) != bool(access.key):
            raise UsageError("--etcd-cert and --etcd-key go together")
        if access.password and not access.user:
            raise UsageError("an etcd password needs a user (NETDIAG_ETCD_USER)")
        return access

    def environment(self) -> dict[str, str]:
        """The same access for a netdiag process this one starts (a lab's agent), in the
        variables `from_environment` reads: an environment, unlike a command line, is
        readable by root and the process's own user only."""
        values = {"NETDIAG_ETCD_CACERT": self.cacert, "NETDIAG_ETCD_CERT": self.cert,
                  "NETDIAG_ETCD_KEY": self.key, "NETDIAG_ETCD_USER": self.user,
                  "NETDIAG_ETCD_PASSWORD": self.password}
        return {name: value for name, value in values.items() if value}


_chosen: EtcdAccess | None = None


def use_access(access: EtcdAccess) -> None:
    """What every Etcd of this process proves itself with, chosen once by the command line
    (`--etcd-cacert`...); without it, the environment's."""
    global _chosen
    _chosen = access


def chosen_access() -> EtcdAccess:
    """What this process's Etcd clients prove themselves with (see use_access)."""
    return _chosen or EtcdAccess.from_environment()


def plain_http_warning(url: str) -> str:
    """A warning for a plain-HTTP etcd that is not on loopback (what crosses the network
    unencrypted: every snapshot, and the password), or ""."""
    protocol, host, _port = parse_url(url)
    if protocol != "http":
        return ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return "" if loopback else (f"warning: etcd at {host} is plain HTTP: snapshots and "
                                "credentials cross the network unencrypted (use https://)")


def encode(data: str | bytes) -> str:
    """etcd's JSON gateway takes keys and values in base64."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def decode(text: str) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(prefix: str) -> str:
    """The range_end that makes a range request read every key starting with `prefix`."""
    raw = prefix.encode()
    return encode(raw[:-1] + bytes([raw[-1] + 1]))


class Etcd:
    """One endpoint. Every call has `timeout` seconds; none retries (callers decide)."""

    def __init__(self, url: str, timeout: float = 5.0, access: EtcdAccess | None = None):
        from etcd3gw.client import Etcd3Client

        protocol, host, port = parse_url(url)
        self.url = f"{protocol}://{host}:{port}"
        self.access = access or chosen_access()
        # The API path is given, not discovered: discovery is one more request per client,
        # and etcd 3.4 and later all serve /v3/.
        self.client = Etcd3Client(host=host, port=port, protocol=protocol, timeout=timeout,
                                  api_path="/v3/", ca_cert=self.access.cacert or None,
                                  cert_cert=self.access.cert or None,
                                  cert_key=self.access.key or None)
        if self.access.cacert:
            # requests lets REQUESTS_CA_BUNDLE (set on many hosts) win over the session's CA.
            self.client.session.trust_env = False
        self._token = ""

    def _authenticate(self) -> None:
        """etcd's user/password auth: a token that every later request carries."""
        self.client.session.headers.pop("Authorization", None)
        answer = self.client.post(self.client.get_url("/auth/authenticate"),
                                  json={"name": self.access.user,
                                        "password": self.access.password})
        self._token = answer["token"]
        self.client.session.headers["Authorization"] = self._token

    def call(self, what: str, function, *args, **kwargs):
        """`function(*args, **kwargs)` of etcd3gw, its failures as StoreUnavailable."""
        from etcd3gw import exceptions
        from requests import RequestException

        try:
            if self.access.user and not self._token:
                self._authenticate()
            try:
                return function(*args, **kwargs)
            except exceptions.Etcd3Exception as exc:
                # A token expires after etcd's --auth-token-ttl of idleness: once more.
                if not self._token or "invalid auth token" not in str(
                        getattr(exc, "detail_text", "")):
                    raise
                self._authenticate()
                return function(*args, **kwargs)
        except exceptions.ConnectionTimeoutError:
            raise StoreUnavailable(f"etcd at {self.url} did not answer in time ({what})") \
                from None
        except exceptions.ConnectionFailedError as exc:
            if "SSL" in getattr(exc, "detail_text", ""):
                raise StoreUnavailable(f"etcd at {self.url}: TLS failed ({what}): check the "
                                       "CA (NETDIAG_ETCD_CACERT) and the client certificate "
                                       "(NETDIAG_ETCD_CERT, NETDIAG_ETCD_KEY)") from None
            raise StoreUnavailable(f"etcd at {self.url} cannot be reached ({what})") from None
        except (exceptions.Etcd3Exception, RequestException, ValueError, KeyError) as exc:
            detail = getattr(exc, "detail_text", "") or str(exc) or type(exc).__name__
            raise StoreUnavailable(f"etcd at {self.url}: {what} failed: "
                                   f"{_one_line(detail)}") from None

    def post(self, what: str, path: str, payload: dict) -> dict:
        """A raw gateway request (`/kv/range`, `/kv/txn`...) and its JSON answer."""
        return self.call(what, self.client.post, self.client.get_url(path), json=payload)


def _one_line(text: str) -> str:
    """etcd's gateway answers errors as JSON: its message, on one line."""
    try:
        text = json.loads(text).get("message") or text
    except (ValueError, AttributeError):
        pass
    return " ".join(str(text).split())[:200]
