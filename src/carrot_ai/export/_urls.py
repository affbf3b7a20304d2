"""URLs of the ingest API: where to POST, and how to show one without the credentials it may carry.

A base URL may carry credentials (``https://user:pass@host``, ``?key=...``). They are used for the request and
never shown: :func:`redact_url` is what every log line, ``repr`` and stderr message prints instead.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from carrot_ai.export._schema import INGEST_PATH

REDACTED = "***"


def redact_url(url: str) -> str:
    """Return ``url`` with its user info and query values masked; never raises."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(key, REDACTED) for key, _ in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except Exception:
        return "<unparsable URL>"


def ingest_url(base_url: str, path: str = INGEST_PATH) -> tuple[str, tuple[str, str] | None]:
    """Return the URL to POST records to (base path + ``path``, query kept) and the base URL's user info.

    The user info is taken out of the URL so that no HTTP client log line can show it; the caller may send it
    as Basic credentials instead.
    """
    parts = urlsplit(base_url.strip())
    userinfo: tuple[str, str] | None = None
    netloc = parts.netloc
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        user, _, password = credentials.partition(":")
        userinfo = (unquote(user), unquote(password))
    full_path = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((parts.scheme, netloc, quote(full_path, safe="/%:@"), parts.query, "")), userinfo
