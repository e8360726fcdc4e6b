"""The server's settings: one typed object, every setting with a default and help text.

Precedence: CLI flag > environment variable (``REFLECTD_<NAME>``) > default. The CLI builds
this object; tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reflectd.engine.handlers import EngineSettings


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits on what clients may send; passing one gives a documented error."""

    #: largest WebSocket message a client may send (bytes)
    max_message_bytes: int = 1024 * 1024
    #: most mutations in one push message
    max_mutations_per_push: int = 1000
    #: most bytes queued for one slow socket before it is dropped
    max_send_buffer_bytes: int = 16 * 1024 * 1024
    #: most sync connections one process holds (proxied ones included)
    max_connections: int = 50_000
    #: most clients connected to one room (counted on the room's owner)
    max_connections_per_room: int = 5_000
    #: most sync connections from one client address (0: no limit)
    max_connections_per_address: int = 0
    #: failed REST authentications allowed per address and minute, then 429 (0: no limit)
    max_failed_auth_per_minute: int = 20


@dataclass(frozen=True, slots=True)
class ServerSettings:
    #: the storage URL: a SQLite file path, ``sqlite:///path`` or ``memory:``
    db: str = ".reflectd/reflectd.sqlite3"
    limits: Limits = field(default_factory=Limits)
    engine: EngineSettings = field(default_factory=EngineSettings)
    #: the app-id of the seed's REST routes ``/v1/apps/{app-id}/...``
    app_id: str = "default"
    #: a REST API key with every permission, for bootstrapping and scripts (never logged)
    api_key: str | None = field(default=None, repr=False)
    #: a folder of static files (a web page for the app) served under ``/app/``
    static_dir: str | None = None
    #: how long the auth handler may take (ms)
    auth_timeout_ms: int = 5000
    #: threads that run a plain (non-async) auth handler; when every one is held by a call
    #: past its timeout, connects are refused at once (``authHandler busy``)
    auth_threads: int = 32
    #: how long an idle room (no clients, nothing pending) stays in memory (ms)
    room_idle_unload_ms: int = 30_000
    #: at shutdown, sockets are closed this many at a time ...
    shutdown_close_batch: int = 500
    #: ... with this pause between batches (ms), so reconnecting clients spread out
    shutdown_batch_pause_ms: int = 50
    #: this node's name in room leases (PostgreSQL only); empty: a random one at start
    node_id: str = ""
    #: where the other nodes reach this one (``http://host:port``), for proxied sockets
    advertise_url: str = ""
    #: how long a node's lease on a room lasts unless renewed (ms; renewed at a third of it)
    lease_ms: int = 5000
