"""The shop's backend of docs/backend.md's worked example: when a payment succeeds it marks the
order paid in the order's room (``rooms:mutate``), and it receives reflectd's webhooks.

Run it beside reflectd::

    REFLECTD_URL=http://127.0.0.1:8080 REFLECTD_API_KEY=<a key with rooms:write> \\
    REFLECTD_WEBHOOK_SECRET=<the whsec_... that `reflectd webhooks add` printed> \\
    uvicorn examples.backend.shop:app --port 9000

- ``POST /payments`` with ``{"orderID": "17", "payment": "pay_123"}`` is what a payment
  provider would call. The backend runs ``markPaid`` in the room ``order-17``, with the
  payment's ID as the ``Idempotency-Key``: a provider that calls twice, or a retry after a
  timeout, marks the order paid once.
- ``POST /webhooks/reflectd`` receives reflectd's events, checks their Standard Webhooks
  signature and keeps them (``GET /events`` lists them); a real shop would email the customer
  when its order's room changed.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REFLECTD_URL = os.environ.get("REFLECTD_URL", "http://127.0.0.1:8080")
APP_ID = os.environ.get("REFLECTD_APP_ID", "default")

#: the events received, newest last
events: list[dict[str, Any]] = []


async def payment_succeeded(request: Request) -> Response:
    payment = await request.json()
    room = f"order-{payment['orderID']}"
    answer = None
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(3):  # retried with the same key: applied once
            try:
                answer = await http.post(
                    f"{REFLECTD_URL}/v1/apps/{APP_ID}/rooms:mutate",
                    params={"roomID": room},
                    json={"name": "markPaid", "args": {"payment": payment["payment"]}},
                    headers={
                        "Authorization": f"Basic {os.environ['REFLECTD_API_KEY']}",
                        "Idempotency-Key": f"paid-{payment['payment']}",
                    },
                )
            except httpx.TransportError:
                continue
            if answer.status_code < 500:
                break
    if answer is None:
        return JSONResponse({"error": "reflectd is unreachable"}, status_code=502)
    # 200 {"result": {"version": ...}}, or the error (422: the mutator refused)
    return JSONResponse(answer.json(), status_code=answer.status_code)


async def reflectd_webhook(request: Request) -> Response:
    body = await request.body()
    try:
        event = Webhook(os.environ["REFLECTD_WEBHOOK_SECRET"]).verify(body, dict(request.headers))
    except WebhookVerificationError:
        return Response("bad signature", status_code=400)
    events.append(event)
    return Response(status_code=204)


async def list_events(request: Request) -> Response:
    return JSONResponse(events)


app = Starlette(
    routes=[
        Route("/payments", payment_succeeded, methods=["POST"]),
        Route("/webhooks/reflectd", reflectd_webhook, methods=["POST"]),
        Route("/events", list_events, methods=["GET"]),
    ]
)
