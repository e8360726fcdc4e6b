"""A ``postgresql://`` URL, as reflectd reads it: libpq's, plus reflectd's own ``schema``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from reflectd.storage.migrations.postgres import quote_ident

#: the schema the tables live in unless the URL or the caller names another
DEFAULT_SCHEMA = "reflectd"


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A ``postgresql://`` URL split into what asyncpg gets and what reflectd keeps."""

    #: the URL handed to asyncpg (without reflectd's own ``schema`` parameter)
    dsn: str
    schema: str
    #: the URL without its password, for messages
    display: str
    #: the session settings of every connection (beside those of the URL's query)
    server_settings: dict[str, str]

    @classmethod
    def parse(cls, url: str, schema: str | None = None) -> PostgresURL:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"not a postgresql:// URL: {_redact(url)!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        in_url = [value for name, value in query if name == "schema"]
        if len(in_url) > 1 or (in_url and schema is not None and in_url[0] != schema):
            raise ValueError(f"{_redact(url)}: the schema is named twice")
        chosen = schema if schema is not None else in_url[0] if in_url else DEFAULT_SCHEMA
        quote_ident(chosen)  # refuses an empty name or a NUL
        rest = urlencode([(name, value) for name, value in query if name != "schema"])
        dsn = urlunsplit(parts._replace(query=rest))
        settings = {"synchronous_commit": "on"}
        if not any(name == "application_name" for name, _ in query):
            settings["application_name"] = "reflectd"
        return cls(dsn=dsn, schema=chosen, display=_redact(dsn), server_settings=settings)


def _redact(url: str) -> str:
    """``url`` without its password (in the user part or the query)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(name, "***" if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)
