"""Telling a request forwarded by another node of the cluster from a client's.

A node that carries a socket (or a close beacon) to the room's owner marks the request with
``PROXIED_HEADER``; the owner then never proxies it again, and does not count it against the
client-address limit (it was counted where it came in). Anyone can send a header, so its
value proves where it comes from::

    x-reflectd-proxied: <node id> <unix ms> <hex HMAC-SHA256>

The HMAC is keyed by the cluster's secret (``ClusterStore.cluster_secret``, kept in the shared
PostgreSQL database: only the nodes and whoever can read that database know it) and covers
the node ID, the time, the path and the query's parameters, so a header is good for one
request only (the same path and parameters), for ``MAX_AGE_MS``. A header that proves
nothing (from a client, or on a node without a cluster) is ignored: the request is treated
as a client's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from starlette.requests import HTTPConnection

from reflectd import clock
from reflectd.server.http import client_address

logger = logging.getLogger(__name__)

#: marks a request one node forwards to another
PROXIED_HEADER = "x-reflectd-proxied"
#: how far a header's time may be from this node's clock (ms): clock skew plus transit
MAX_AGE_MS = 30_000
#: a forged header is logged at most once in this many seconds
WARN_EVERY_S = 60.0


class PeerAuth:
    """Signs the requests this node forwards; recognizes those its peers signed."""

    def __init__(
        self,
        secret: bytes | None,
        node_id: str,
        *,
        now_ms: Callable[[], int] = clock.now_ms,
    ) -> None:
        #: None: this node has no peers, and trusts no header
        self._secret = secret
        self.node_id = node_id
        self._now_ms = now_ms
        self._warned_at = -WARN_EVERY_S
        #: forged or stale headers ignored since the start
        self.ignored = 0

    def header(self, path: str, params: Iterable[tuple[str, str]]) -> str:
        """The value of ``PROXIED_HEADER`` for a request of ``path`` with ``params``."""
        assert self._secret is not None, "only a node of a cluster forwards requests"
        sent_ms = self._now_ms()
        return f"{self.node_id} {sent_ms} {self._mac(self.node_id, sent_ms, path, params)}"

    def sender(self, connection: HTTPConnection) -> str | None:
        """The node that forwarded ``connection``, if its header proves it; None for a
        client's request, whatever header it carries."""
        value = connection.headers.get(PROXIED_HEADER)
        if value is None:
            return None
        node_id = self._verified(value, connection.url.path, connection.query_params.multi_items())
        if node_id is None:
            self.ignored += 1
            self._warn(connection)
        return node_id

    def _verified(self, value: str, path: str, params: Iterable[tuple[str, str]]) -> str | None:
        if self._secret is None:
            return None
        node_id, _, rest = value.rpartition(" ")
        node_id, _, sent = node_id.rpartition(" ")
        if not node_id or not sent.isdigit() or len(sent) > 16:
            return None
        sent_ms = int(sent)
        if abs(self._now_ms() - sent_ms) > MAX_AGE_MS:
            return None
        if not hmac.compare_digest(rest, self._mac(node_id, sent_ms, path, params)):
            return None
        return node_id

    def _mac(self, node_id: str, sent_ms: int, path: str, params: Iterable[tuple[str, str]]) -> str:
        assert self._secret is not None
        query = urlencode(sorted(params))
        message = f"{node_id}\n{sent_ms}\n{path}\n{query}".encode(errors="surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _warn(self, connection: HTTPConnection) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY_S:
            return
        self._warned_at = now
        logger.warning(
            "ignored a %s header from %s that no node of this cluster signed (%d so far); "
            "strip it at the edge (docs/deployment.md)",
            PROXIED_HEADER,
            client_address(connection),
            self.ignored,
        )
