"""HTTP requests shared by the HTTP-based sources: limits, auth, TLS, JSON."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from monitor.errors import FieldValueError, SourceError
from monitor.secrets import Secret

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""Default limit of one response body; larger bodies are rejected."""

_CHUNK_BYTES = 65536
_PREVIEW_BYTES = 40


def check_http_url(name: str, url: str | Secret) -> None:
    """Raise ``FieldValueError`` unless ``url`` is an absolute http(s) URL.

    The message of a secret URL names its variable, never its value.
    """
    text = url.reveal() if isinstance(url, Secret) else url
    parts = urllib.parse.urlsplit(text)
    if parts.scheme in ("http", "https") and parts.hostname:
        return
    if not isinstance(url, Secret):
        subject = f"{name} {text!r} is"
    elif url.variable:
        subject = f"{name} from ${{{url.variable}}} is"
    else:
        subject = f"{name} is"
    raise FieldValueError(
        name,
        f"{subject} not an absolute URL; write it with its scheme and host, "
        "such as http://127.0.0.1:9090.",
    )


@dataclass(frozen=True, kw_only=True)
class HttpOptions:
    """Headers, credentials and TLS trust of one HTTP source."""

    headers: Mapping[str, Secret] = field(default_factory=dict)
    bearer_token: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    ca_file: Path | None = None
    """PEM bundle of the certificate authorities to trust instead of the
    system ones; relative paths resolve against the config folder."""
    max_response_bytes: int = MAX_RESPONSE_BYTES


@dataclass(frozen=True, kw_only=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def read_limited(response: requests.Response, limit: int, what: str) -> bytes:
    """Read a streamed response body, failing once it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            response.close()
            raise SourceError(
                "response_too_large",
                f"{what} returned more than {limit} bytes; raise max_response_bytes "
                "or narrow the request.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def http_request(
    session: requests.Session,
    what: str,
    *,
    method: str,
    url: str,
    timeout_seconds: float,
    options: HttpOptions | None = None,
    ca_path: Path | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    limit: int | None = None,
    allowed_statuses: tuple[int, ...] = (),
) -> HttpReply:
    """Send one request and read its body, mapping failures to reasons.

    A status outside 2xx raises ``SourceError`` with reason ``http_status``
    unless it is listed in ``allowed_statuses`` (such as 304).
    """
    options = options or HttpOptions()
    merged = {name: value.reveal() for name, value in options.headers.items()}
    merged.update(headers or {})
    auth = None
    if options.bearer_token is not None:
        merged["Authorization"] = f"Bearer {options.bearer_token.reveal()}"
    elif options.username is not None:
        password = options.password.reveal() if options.password else ""
        auth = HTTPBasicAuth(options.username, password)
    verify: bool | str = str(ca_path) if ca_path is not None else True
    try:
        response = session.request(
            method,
            url,
            headers=merged,
            params=params,
            json=json_body,
            auth=auth,
            verify=verify,
            timeout=timeout_seconds,
            stream=True,
        )
    except requests.Timeout:
        raise SourceError(
            "timeout", f"{what} timed out after {timeout_seconds:g}s."
        ) from None
    except requests.exceptions.SSLError:
        raise SourceError(
            "tls",
            f"{what} failed the TLS handshake; check the server certificate or "
            "set ca_file to the bundle that signed it.",
        ) from None
    except requests.RequestException as error:
        raise SourceError(
            "connection", f"{what} failed: {type(error).__name__}."
        ) from None

    with response:
        try:
            body = read_limited(
                response, options.max_response_bytes if limit is None else limit, what
            )
        except requests.RequestException:
            raise SourceError(
                "connection", f"{what} failed while reading the response."
            ) from None
    status = response.status_code
    if not 200 <= status < 300 and status not in allowed_statuses:
        raise SourceError("http_status", f"{what} returned HTTP {status}.")

    return HttpReply(status=status, headers=dict(response.headers), body=body)


def decode_json(reply: HttpReply, what: str) -> Any:
    """Decode a JSON body, naming HTML error pages and truncated documents."""
    kind = reply.headers.get("Content-Type", "unknown content type")
    start = reply.body[:_PREVIEW_BYTES]
    if not reply.body.strip():
        raise SourceError("invalid_json", f"{what} returned an empty body.")
    if reply.body.lstrip()[:1] == b"<":
        raise SourceError(
            "html_response",
            f"{what} returned an HTML or XML page (content type {kind!r}, body "
            f"starts {start!r}) instead of JSON; check the URL and credentials.",
        )
    try:
        return json.loads(reply.body)
    except UnicodeDecodeError:
        raise SourceError(
            "invalid_json", f"{what} returned a body that is not UTF-8 text."
        ) from None
    except RecursionError:
        raise SourceError(
            "invalid_json",
            f"{what} returned JSON nested too deeply to decode (body starts "
            f"{start!r}).",
        ) from None
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(reply.body.rstrip())
        detail = "is truncated" if truncated else f"is invalid at byte {error.pos}"
        raise SourceError(
            "invalid_json",
            f"{what} returned JSON that {detail} (content type {kind!r}, body "
            f"starts {start!r}).",
        ) from None


def http_get_json(
    session: requests.Session,
    what: str,
    *,
    method: str,
    url: str,
    timeout_seconds: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    limit: int = MAX_RESPONSE_BYTES,
    options: HttpOptions | None = None,
    ca_path: Path | None = None,
) -> Any:
    """Send one request and decode a JSON body, mapping failures to reasons."""
    reply = http_request(
        session,
        what,
        method=method,
        url=url,
        timeout_seconds=timeout_seconds,
        options=options,
        ca_path=ca_path,
        headers=headers,
        params=params,
        json_body=json_body,
        limit=limit if options is None else None,
    )
    return decode_json(reply, what)
