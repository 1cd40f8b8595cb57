"""HTTP API for silences: list, create and expire."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from exporters._matchers import Matcher, parse_matcher
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


CREATE_KEYS = ("matchers", "duration", "starts_at", "ends_at", "comment", "created_by")


def _create(silences: Silences, body: dict[str, Any]) -> Response:
    try:
        fields = _silence_fields(body)
        silence = silences.create(**fields)
    except (MatcherError, SilenceError, DurationError, ValueError) as error:
        return Response.error(HTTPStatus.BAD_REQUEST, str(error))
    return Response.json(
        {"status": "success", "data": silence.to_dict()}, HTTPStatus.CREATED
    )


def _silence_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Check a create request and return the arguments of ``Silences.create``."""
    unknown = sorted(k for k in body if not k.startswith("_") and k not in CREATE_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown field {unknown[0]!r}; a silence has {', '.join(CREATE_KEYS)}."
        )
    texts = body.get("matchers")
    if not isinstance(texts, list) or not texts:
        raise ValueError(
            "A silence needs 'matchers', a list of at least one matcher such as "
            '"alertname=Foo".'
        )
    for name in ("comment", "created_by"):
        if not isinstance(body.get(name, ""), str):
            raise ValueError(f"Field {name!r} must be a string.")
    if "duration" in body and "ends_at" in body:
        raise ValueError("Give either 'duration' or 'ends_at', not both.")
    starts_at = _moment(body, "starts_at") or datetime.now(UTC)
    ends_at = _moment(body, "ends_at")
    if ends_at is None:
        if "duration" not in body:
            raise ValueError("Give 'duration' (such as 2h) or 'ends_at'.")
        try:
            ends_at = starts_at + parse_duration(str(body["duration"]))
        except OverflowError:
            raise ValueError(
                f"The duration {body['duration']!r} ends past the year 9999."
            ) from None
    return {
        "matchers": [_matcher(item) for item in texts],
        "starts_at": starts_at,
        "ends_at": ends_at,
        "comment": body.get("comment", ""),
        "created_by": body.get("created_by", ""),
    }


def _matcher(item: object) -> Matcher:
    """Read a matcher as text (``name=value``) or as the object GET returns."""
    if isinstance(item, str):
        return parse_matcher(item)
    if isinstance(item, dict) and set(item) == {"name", "operator", "value"}:
        if all(isinstance(part, str) for part in item.values()):
            return Matcher(
                name=item["name"], operator=item["operator"], value=item["value"]
            )
    raise ValueError(
        f"Invalid matcher {json.dumps(item)[:80]}; write a string such as "
        '"alertname=Foo" or an object with the string fields name, operator '
        "and value."
    )


def _moment(body: dict[str, Any], name: str) -> datetime | None:
    if name not in body:
        return None
    try:
        moment = datetime.fromisoformat(str(body[name]).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"Field {name!r} is {str(body[name])[:60]!r}, not an ISO 8601 time "
            "such as 2026-12-04T18:00:00Z."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
