"""The OpenAPI document tells the truth: it has exactly the served routes, docs/rest.md and
docs/openapi.json are its current renderings, and schemathesis finds the server conforming."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from reflectd.errors import ApiError
from reflectd.server.rest.markdown import (
    BEGIN_MARKER,
    END_MARKER,
    render_markdown,
    splice_markdown,
)
from reflectd.server.rest.openapi import build_openapi
from reflectd.server.rest.routes import ROUTES, RestRoute, _find
from reflectd.storage.base import PERMISSIONS

from .conftest import APP_ID, ENV_KEY, Rest, served_in_thread

DOCS = Path(__file__).parents[3] / "docs"
DOCUMENT = build_openapi()
SERVED = build_openapi(APP_ID)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _resolve(method: str, path: str, operation: dict[str, Any]) -> RestRoute:
    """The served route that a documented operation reaches, by the server's own matching."""
    concrete = path
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            concrete = concrete.replace("{" + param["name"] + "}", quote(param["example"], safe=""))
    assert "{" not in concrete, concrete
    if concrete.startswith("/api/v1/"):
        rest, original = concrete[len("/api/v1") :], True
    else:
        prefix = f"/v1/apps/{operation['parameters'][0]['example']}"
        assert concrete.startswith(prefix + "/"), concrete
        rest, original = concrete[len(prefix) :], False
    route, segment = _find(rest, method, original=original)
    assert route.legacy == (operation["x-shape"] == "legacy")
    assert bool(segment) == route.legacy
    return route


@pytest.mark.parametrize("document", [DOCUMENT, SERVED], ids=["docs", "served"])
def test_the_document_has_exactly_the_served_routes(document: dict[str, Any]) -> None:
    reached: dict[str, list[RestRoute]] = {"apps": [], "original": [], "legacy": []}
    for method, path, operation in operations(document):
        route = _resolve(method, path, operation)
        assert route.method == method
        assert operation["x-permission"] == route.permission
        needed = "any valid key" if route.permission is None else f"`{route.permission}`"
        assert f"Permission: {needed}." in operation["description"]
        reached[operation["x-shape"]].append(route)
        # every wrong method of the path gets 405, as documented
        for other in {"GET", "POST"} - {method}:
            if other.lower() not in document["paths"][path]:
                with pytest.raises(ApiError) as caught:
                    _resolve(other, path, operation)
                assert caught.value.status == 405
    plain = [r for r in ROUTES if not r.legacy]
    assert sorted(reached["apps"], key=ROUTES.index) == plain
    assert sorted(reached["original"], key=ROUTES.index) == plain
    assert sorted(reached["legacy"], key=ROUTES.index) == [r for r in ROUTES if r.legacy]


def test_every_operation_documents_its_answers() -> None:
    ids = set()
    for _, path, operation in operations(DOCUMENT):
        ids.add(operation["operationId"])
        statuses = set(operation["responses"])
        assert {"200", "400", "401", "405", "413", "500"} <= statuses, path
        assert ("403" in statuses) == (operation["x-permission"] is not None), path
        if operation["x-shape"] == "apps":
            assert "404" in statuses
            assert operation["security"] == [{"BasicApiKey": []}]
            assert operation["parameters"][0]["name"] == "app-id"
        else:
            assert operation["security"] == [{"ReflectApiKey": []}, {"LegacyReflectApiKey": []}]
        for status, response in operation["responses"].items():
            for media_type, media in response["content"].items():
                if media_type == "text/plain":
                    continue
                for example in media.get("examples", {}).values():
                    value = example["value"]
                    assert value["error"]["code"] == int(status)
    assert len(ids) == len(list(operations(DOCUMENT)))
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["BasicApiKey"]["name"] == "Authorization"
    assert schemes["ReflectApiKey"]["name"] == "x-reflect-api-key"
    assert DOCUMENT["openapi"] == "3.1.0"


def test_the_served_document_names_this_app_id() -> None:
    apps = [o for _, _, o in operations(SERVED) if o["x-shape"] == "apps"]
    assert apps
    for operation in apps:
        assert operation["parameters"][0]["schema"]["enum"] == [APP_ID]


@pytest.mark.anyio
async def test_openapi_json_is_served_without_a_key(rest: Rest) -> None:
    response = await rest.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == SERVED
    assert (await rest.http.post("/openapi.json")).status_code == 405


def test_docs_rest_md_is_current_and_complete() -> None:
    text = (DOCS / "rest.md").read_text()
    assert splice_markdown(text, render_markdown(DOCUMENT)) == text, (
        "run: python -m reflectd.server.rest.markdown docs/rest.md"
    )
    for method, path, _ in operations(DOCUMENT):
        assert f"`{method} {path}`" in text, path
    for permission in PERMISSIONS:
        assert f"`{permission}`" in text
    # the hand-written part: the three-line example at the top, before the reference
    head = text.split(BEGIN_MARKER)[0]
    assert END_MARKER in text
    assert re.search(r"KEY=\$\(reflectd keys create \S+ .*-p rooms:read.*\| tail -1\)", head)
    assert "curl" in head


# ------------------------------------------------------------------------------ schemathesis

#: examples per operation and mode (the whole run stays well under a minute)
EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
HEADERS = {"Authorization": f"Basic {ENV_KEY}", "x-reflect-api-key": ENV_KEY}
OPERATIONS = [(method, path) for method, path, _ in operations(SERVED)]
#: negative data needs something to negate: a query, a body or the app-id (a legacy path
#: segment has none: any non-empty string is valid, an empty one cannot be sent)
NEGATABLE = [
    (method, path)
    for method, path, operation in operations(SERVED)
    if operation["x-shape"] == "apps"
    or operation.get("requestBody")
    or any(p["in"] == "query" for p in operation.get("parameters", []))
]
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in NEGATABLE
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with served_in_thread() as url:
        yield url


@pytest.fixture(scope="module")
def served_schema(base_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_schemathesis(
    served_schema: Any,
    base_url: str,
    session: requests.Session,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = served_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, session=session, headers=HEADERS, checks=CHECKS, timeout=5
        )

    check()


def test_schemathesis_without_a_key_gets_documented_401s(served_schema: Any, base_url: str) -> None:
    strategy = st.one_of(*(served_schema[p][m].as_strategy() for m, p in OPERATIONS))

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers={"x-reflect-api-key": "wrong"})
        assert response.status_code == 401
        case.validate_response(response, checks=CHECKS)

    check()
