"""HTTP API for silences: list, create and expire."""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from exporters._matchers import parse_matcher
from exporters.errors import MatcherError, SilenceError
from exporters.silences import Silences
from monitor.durations import DurationError, parse_duration
from monitor.server import Response, Routes
from monitor.store import Store


def add_silence_routes(routes: Routes, store: Store) -> None:
    """Add ``/api/v1/silences``; creating and expiring need the API token."""
    silences = Silences(store)
    routes.add("GET", "/api/v1/silences", lambda _: _list(silences))
    routes.add(
        "POST", "/api/v1/silences", lambda b: _create(silences, b), protected=True
    )
    routes.add(
        "DELETE", "/api/v1/silences", lambda b: _expire(silences, b), protected=True
    )


def _list(silences: Silences) -> Response:
    data = [silence.to_dict() for silence in silences.list()]
    return Response.json({"status": "success", "data": {"silences": data}})


def _create(silences: Silences, body: dict[str, Any]) -> Response:
    try:
        matchers = [parse_matcher(str(text)) for text in body.get("matchers") or []]
        if not matchers:
            raise ValueError(
                "A silence needs at least one matcher, such as alertname=Foo."
            )
        if "ends_at" in body:
            ends_at = datetime.fromisoformat(str(body["ends_at"]))
        else:
            ends_at = datetime.now(UTC) + parse_duration(str(body.get("duration", "")))
        if ends_at.tzinfo is None:
            ends_at = ends_at.replace(tzinfo=UTC)
        silence = silences.create(
            matchers=matchers,
            ends_at=ends_at,
            comment=str(body.get("comment") or ""),
            created_by=str(body.get("created_by") or ""),
        )
    except (MatcherError, SilenceError, DurationError, ValueError) as error:
        return Response.error(HTTPStatus.BAD_REQUEST, str(error))
    return Response.json(
        {"status": "success", "data": silence.to_dict()}, HTTPStatus.CREATED
    )


def _expire(silences: Silences, body: dict[str, Any]) -> Response:
    ids = parse_qs(str(body.get("_query", ""))).get("id", [])
    if not ids:
        return Response.error(
            HTTPStatus.BAD_REQUEST, "Give the silence to expire as ?id=<silence id>."
        )
    try:
        silence = silences.expire(ids[0])
    except SilenceError as error:
        return Response.error(HTTPStatus.NOT_FOUND, str(error))
    return Response.json({"status": "success", "data": silence.to_dict()})
