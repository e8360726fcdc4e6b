"""The Rooms REST API: the ``/v1/apps/{app-id}/...`` API and the original server's
``/api/v1/...`` API (``routes.py``)."""
