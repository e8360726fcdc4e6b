"""Making a webhook endpoint from what an operator typed: the URL and event types checked."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable

import httpx

from reflectd.storage.webhooks import EVENT_TYPES, EventType, WebhookEndpoint

#: the longest endpoint URL accepted
MAX_URL_CHARS = 2000

#: random bytes in a signing secret (Standard Webhooks: between 24 and 64)
SECRET_BYTES = 32


def parse_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; else ``ValueError`` saying why."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"the URL is longer than {MAX_URL_CHARS} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError(
            f"{url!r} is not a URL: it has spaces, control or non-ASCII characters "
            "(percent-encode them)"
        )
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as e:
        raise ValueError(f"{url!r} is not a URL: {e}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if not parsed.host:
        raise ValueError(f"{url!r} has no host")
    return url


def parse_event_types(names: Iterable[str]) -> tuple[EventType, ...]:
    """The event types named, in their canonical order; ``ValueError`` for an unknown one or
    none at all."""
    wanted = set()
    for name in names:
        if name not in EVENT_TYPES:
            raise ValueError(f"unknown event type {name!r}; the types are {', '.join(EVENT_TYPES)}")
        wanted.add(name)
    if not wanted:
        raise ValueError(f"give at least one event type: {', '.join(EVENT_TYPES)}")
    return tuple(t for t in EVENT_TYPES if t in wanted)


def new_endpoint(url: str, event_types: Iterable[str], *, now_ms: int) -> WebhookEndpoint:
    """A new endpoint with a fresh ID and signing secret; ``ValueError`` for bad input."""
    return WebhookEndpoint(
        endpoint_id="ep_" + os.urandom(8).hex(),
        url=parse_url(url),
        event_types=parse_event_types(event_types),
        secret="whsec_" + base64.b64encode(os.urandom(SECRET_BYTES)).decode(),
        created_ms=now_ms,
    )
