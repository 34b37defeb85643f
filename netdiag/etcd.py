"""One etcd endpoint, reached through its HTTP gateway (etcd3gw), with every failure of it
translated here, once, into StoreUnavailable: nothing above this module sees etcd3gw's or
requests' exceptions. The fleet's keys (netdiag/fleet/store.py) and the drivers' store on etcd
(netdiag/store/etcd.py) both talk to etcd through it."""

from __future__ import annotations

import base64
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

    def __init__(self, url: str, timeout: float = 5.0):
        from etcd3gw.client import Etcd3Client

        protocol, host, port = parse_url(url)
        self.url = f"{protocol}://{host}:{port}"
        # The API path is given, not discovered: discovery is one more request per client,
        # and etcd 3.4 and later all serve /v3/.
        self.client = Etcd3Client(host=host, port=port, protocol=protocol, timeout=timeout,
                                  api_path="/v3/")

    def call(self, what: str, function, *args, **kwargs):
        """`function(*args, **kwargs)` of etcd3gw, its failures as StoreUnavailable."""
        from etcd3gw import exceptions
        from requests import RequestException

        try:
            return function(*args, **kwargs)
        except exceptions.ConnectionTimeoutError:
            raise StoreUnavailable(f"etcd at {self.url} did not answer in time ({what})") \
                from None
        except exceptions.ConnectionFailedError:
            raise StoreUnavailable(f"etcd at {self.url} cannot be reached ({what})") from None
        except (exceptions.Etcd3Exception, RequestException, ValueError, KeyError) as exc:
            detail = getattr(exc, "detail_text", "") or str(exc) or type(exc).__name__
            raise StoreUnavailable(f"etcd at {self.url}: {what} failed: "
                                   f"{_one_line(detail)}") from None

    def post(self, what: str, path: str, payload: dict) -> dict:
        """A raw gateway request (`/kv/range`, `/kv/txn`...) and its JSON answer."""
        return self.call(what, self.client.post, self.client.get_url(path), json=payload)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
