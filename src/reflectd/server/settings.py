"""The server's settings: one typed object, every setting declared once with its default and help
text (``reflectd.setting``).

Precedence: CLI flag > environment variable (``REFLECTD_<NAME>``) > default. The CLI builds
this object from the declarations (``reflectd.cli_settings``); tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reflectd.engine.handlers import EngineSettings
from reflectd.setting import Panel, setting


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits on what clients may send; passing one gives a documented error."""

    max_message_bytes: int = setting(
        1024 * 1024,
        "Largest WebSocket message a client may send, in bytes.",
        panel=Panel.LIMITS,
        doc="Messages over 4 times this are refused by the WebSocket layer itself.",
    )
    max_mutations_per_push: int = setting(
        1000, "Most mutations in one push message.", panel=Panel.LIMITS
    )
    max_send_buffer_bytes: int = setting(
        16 * 1024 * 1024,
        "Most bytes queued for one slow socket before it is closed.",
        panel=Panel.LIMITS,
        minimum=1,
    )
    max_send_stall_ms: int = setting(
        30_000,
        "Longest a socket may take to accept the next piece of a message sent in pieces (a big"
        " room's fast-forward) before it is closed as a slow reader, in milliseconds.",
        panel=Panel.LIMITS,
        minimum=1,
        doc="A big fast-forward is written piece by piece as the client reads it, so its size "
        "never counts against `--max-send-buffer-bytes`; this bounds a client that stops reading "
        "in the middle.",
    )
    max_connections: int = setting(
        50_000,
        "Most sync connections of the process (proxied ones included).",
        panel=Panel.LIMITS,
    )
    max_connections_per_room: int = setting(
        5_000,
        "Most clients connected to one room (counted on the room's owner).",
        panel=Panel.LIMITS,
    )
    max_connections_per_address: int = setting(
        0,
        "Most sync connections from one client address (0: no limit).",
        panel=Panel.LIMITS,
        minimum=0,
        doc="Behind a proxy, see `--forwarded-allow-ips`. Worth setting when clients reach "
        "reflectd directly, but mind offices and mobile carriers that put many users behind "
        "one address.",
    )
    max_failed_auth_per_minute: int = setting(
        20,
        "Failed REST authentications allowed per client address and minute; then 429 until "
        "the minute ends (0: no limit).",
        panel=Panel.LIMITS,
        minimum=0,
        doc="A failure is a request with no key or an unknown key.",
    )


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How webhook events are throttled and delivered (``reflectd webhooks``)."""

    webhook_changed_interval_ms: int = setting(
        1000,
        "At most one `room.changed` webhook event per room in this interval (ms); it carries "
        "the room's latest version.",
        panel=Panel.WEBHOOKS,
        minimum=0,
        doc="See [backend.md](backend.md#webhooks).",
    )
    webhook_poll_ms: int = setting(
        1000,
        "How often a node looks for webhook deliveries that are due and re-reads the endpoints "
        "(ms); a node delivers its own rooms' events at once.",
        panel=Panel.WEBHOOKS,
        minimum=10,
    )
    webhook_timeout_ms: int = setting(
        10_000,
        "How long a webhook receiver may take to answer one delivery (ms); then the attempt "
        "failed.",
        panel=Panel.WEBHOOKS,
        minimum=1,
    )
    webhook_max_attempts: int = setting(
        15,
        "Attempts to deliver one webhook event before it is marked failed.",
        panel=Panel.WEBHOOKS,
        minimum=1,
    )
    webhook_retry_base_ms: int = setting(
        2000,
        "The wait before the first retry of a failed webhook delivery (ms); it doubles at each "
        "retry.",
        panel=Panel.WEBHOOKS,
        minimum=1,
    )
    webhook_retry_max_ms: int = setting(
        3_600_000,
        "The longest wait between two attempts of a webhook delivery (ms).",
        panel=Panel.WEBHOOKS,
        minimum=1,
    )
    webhook_log_retention_ms: int = setting(
        7 * 24 * 3_600_000,
        "How long the delivery log keeps a delivered or failed webhook delivery (ms).",
        panel=Panel.WEBHOOKS,
        minimum=1,
    )


class MetricsAccess(StrEnum):
    """Who may read ``GET /metrics``."""

    ON = "on"
    OFF = "off"
    KEY = "key"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    db: str = setting(
        ".reflectd/reflectd.sqlite3",
        "Storage: a SQLite file path, `sqlite:///path`, `memory://` (nothing kept), or "
        "`postgresql://user@host/db` (several nodes may share it).",
        panel=Panel.STORAGE,
        doc="See [storage.md](storage.md).",
    )
    limits: Limits = field(default_factory=Limits)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    app_id: str = setting(
        "default",
        "The app-id of the REST routes `/v1/apps/{app-id}/...` "
        "(`REFLECTD_API_KEY` in the environment is a key with every permission).",
        panel=Panel.STORAGE,
    )
    api_key: str | None = setting(
        None,
        "A REST API key with every permission, for bootstrapping and scripts (never logged).",
        panel=Panel.STORAGE,
        flag=False,
        repr=False,
    )
    metrics: MetricsAccess = setting(  # noqa: RUF009 (an enum: immutable)
        MetricsAccess.ON,
        "`GET /metrics` (Prometheus): `on` (open to anyone who reaches the port), `off` (404), "
        "or `key` (an API key with the permission `metrics:read`).",
        panel=Panel.STORAGE,
        doc="See [operations.md](operations.md).",
    )
    static_dir: str | None = setting(
        None,
        "A folder of static files (e.g. the app's web page) to serve under `/app/`.",
        panel=Panel.STORAGE,
        folder=True,
    )
    auth_timeout_ms: int = setting(
        5000,
        "How long the auth handler may take before the connect is refused (ms).",
        panel=Panel.TIMINGS,
        minimum=1,
    )
    auth_threads: int = setting(
        32,
        "Threads that run a plain (non-async) auth handler; when every one is held by a call "
        "past its timeout, connects are refused at once (`authHandler busy`).",
        panel=Panel.TIMINGS,
        minimum=1,
    )
    room_idle_unload_ms: int = setting(
        30_000,
        "How long a room with no clients and nothing pending stays in memory (ms).",
        panel=Panel.TIMINGS,
        minimum=0,
    )
    shutdown_close_batch: int = setting(
        500,
        "At shutdown, how many sockets are closed at a time (a pause between batches).",
        panel=Panel.TIMINGS,
        minimum=1,
    )
    shutdown_batch_pause_ms: int = setting(
        50,
        "At shutdown, the pause between batches of closed sockets (ms), so that reconnecting "
        "clients spread out.",
        panel=Panel.TIMINGS,
        minimum=0,
    )
    node_id: str = setting(
        "",
        "With PostgreSQL: this node's name in room leases, unique among the live nodes.",
        panel=Panel.CLUSTER,
        commands=("serve",),
        shown_default="random",
    )
    advertise_url: str = setting(
        "",
        "With PostgreSQL: where the other nodes reach this one, to proxy a room's sockets to "
        "its owner.",
        panel=Panel.CLUSTER,
        commands=("serve",),
        shown_default="http://HOST:PORT",
        doc="See [deployment.md](deployment.md).",
    )
    lease_ms: int = setting(
        5000,
        "With PostgreSQL: how long a node's lease on a room lasts unless renewed (ms); "
        "another node takes a dead node's rooms after it.",
        panel=Panel.CLUSTER,
        commands=("serve",),
        minimum=100,
        doc="The lease is renewed every third of it.",
    )
