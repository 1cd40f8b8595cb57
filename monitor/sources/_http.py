"""HTTP requests shared by the HTTP-based sources: limits, auth, TLS, JSON."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3
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


def read_limited(
    response: requests.Response,
    limit: int,
    what: str,
    *,
    deadline: float | None = None,
    timeout_seconds: float | None = None,
) -> bytes:
    """Read a streamed response body, failing past ``limit`` bytes or ``deadline``.

    Parameters
    ----------
    response : requests.Response
        A response requested with ``stream=True``; it is closed on failure.
    limit : int
        Maximum body size in bytes, after content decoding.
    what : str
        Subject of the error messages, such as ``"Source 'shop'"``.
    deadline : float, optional
        ``time.monotonic()`` value by which the whole body must be read.
    timeout_seconds : float, optional
        The source timeout that set ``deadline``, for the message.

    Raises
    ------
    SourceError
        Reason ``response_too_large`` past ``limit`` and ``timeout`` past
        ``deadline``.
    requests.RequestException
        When the connection fails while reading.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                response.close()
                raise _deadline_error(what, timeout_seconds)
            _bound_socket_wait(response, remaining)
        chunk = _read_chunk(response)
        if not chunk:
            break
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


def _read_chunk(response: requests.Response) -> bytes:
    """Read the next decoded part of the body; ``b""`` at its end.

    ``read1`` returns what one socket read brings, so a slowly sent body
    reaches the deadline check between reads instead of filling a whole
    chunk first.
    """
    try:
        return response.raw.read1(_CHUNK_BYTES, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as error:
        raise requests.exceptions.ReadTimeout(error) from error
    except urllib3.exceptions.HTTPError as error:
        raise requests.exceptions.ConnectionError(error) from error


def _bound_socket_wait(response: requests.Response, seconds: float) -> None:
    """Let no single socket read of ``response`` wait longer than ``seconds``."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        current = sock.gettimeout()
        if current is None or current > seconds:
            sock.settimeout(seconds)


def _deadline_error(what: str, timeout_seconds: float | None) -> SourceError:
    limit = "its timeout" if timeout_seconds is None else f"{timeout_seconds:g}s"
    return SourceError(
        "timeout",
        f"{what} timed out: the request and its body took longer than {limit}; "
        "raise the timeout of the source, or make the server respond faster or "
        "with less data.",
    )


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
    # requests applies its timeout to each socket operation, so a server that
    # sends a byte now and then would never time out. The deadline bounds the
    # whole exchange.
    # NOTE: the deadline is checked from the first body read on. Status line
    # and headers sent a byte at a time still delay the poll, although it is
    # then counted as a timeout.
    deadline = time.monotonic() + timeout_seconds
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
            "timeout",
            f"{what} timed out after {timeout_seconds:g}s; raise the timeout of "
            "the source or check that the server is up.",
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
                response,
                options.max_response_bytes if limit is None else limit,
                what,
                deadline=deadline,
                timeout_seconds=timeout_seconds,
            )
        except requests.Timeout:
            raise _deadline_error(what, timeout_seconds) from None
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
    except ValueError:
        # Python refuses to convert integers longer than its digit limit
        # (4300 by default), so such a number is not a value krwatch can read.
        raise SourceError(
            "invalid_json",
            f"{what} returned JSON with an integer of more than "
            f"{sys.get_int_max_str_digits()} digits (body starts {start!r}); "
            "point the source at a response whose numbers are KPI values.",
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
