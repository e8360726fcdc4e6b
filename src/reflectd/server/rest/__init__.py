"""The Rooms REST API: the seed's ``/v1/apps/{app-id}/...`` and the original's ``/api/v1/...``."""
