"""Webhooks: events committed to an outbox with the change that caused them
(``events``), delivered by a background task (``dispatcher``); endpoints made by
``reflectd webhooks add`` (``endpoints``). Storage: ``reflectd.storage.webhooks``."""

from reflectd.server.webhooks.dispatcher import WebhookDispatcher
from reflectd.server.webhooks.events import RoomEvents, WebhookEvents

__all__ = ["RoomEvents", "WebhookDispatcher", "WebhookEvents"]
