"""Silences: label matchers that stop notifications for a time.

A silence contains matchers (``=``, ``!=``, ``=~``, ``!~``), a start, an end, a
comment and its author, persisted in the store. The dispatcher does not send
a firing notification for an alert that an active silence matches, but it
always sends the resolve of an alert whose firing notification was sent.

The HTTP API calls the ``Silences`` methods; ``add_silence_commands`` and
``run_silence_command`` implement ``krwatch silence``.
"""

from __future__ import annotations

import argparse
import builtins
import json
import sqlite3
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

from exporters._matchers import Matcher, matches_all, parse_matcher
from exporters.errors import MatcherError, SilenceError
from monitor.durations import DurationError, format_duration, parse_duration

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from monitor.config.model import Config

SilenceState = Literal["pending", "active", "expired"]
SILENCE_STATES: tuple[SilenceState, ...] = ("pending", "active", "expired")
DEFAULT_SILENCE_DURATION = timedelta(hours=2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS silences_ends_at ON silences (ends_at);
"""


class StoreLike(Protocol):
    """Interface of ``monitor.store.Store`` that this package uses."""

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def read(self) -> AbstractContextManager[sqlite3.Connection]: ...


@dataclass(frozen=True, kw_only=True)
class Silence:
    """One silence as stored; times are timezone-aware UTC."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime

    def state(self, now: datetime | None = None) -> SilenceState:
        moment = now or datetime.now(UTC)
        if moment < self.starts_at:
            return "pending"

        if moment < self.ends_at:
            return "active"

        return "expired"

    def mutes(self, labels: Mapping[str, str], now: datetime | None = None) -> bool:
        """Tell whether the silence is active now and matches ``labels``."""
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def to_dict(self, now: datetime | None = None) -> dict[str, object]:
        """Convert to the JSON shape of the HTTP API."""
        return {
            "id": self.id,
            "matchers": [matcher.to_dict() for matcher in self.matchers],
            "starts_at": _format(self.starts_at),
            "ends_at": _format(self.ends_at),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": _format(self.created_at),
            "state": self.state(now),
        }


def create_tables(connection: sqlite3.Connection) -> None:
    """Create the silences table if it is missing."""
    execute_script(connection, _SCHEMA)


def execute_script(connection: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements one by one.

    ``sqlite3.Connection.executescript`` commits an open transaction first,
    which would break a caller's ``store.transaction()``.
    """
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def create_silence(
    connection: sqlite3.Connection,
    *,
    matchers: Sequence[Matcher],
    ends_at: datetime,
    comment: str,
    created_by: str,
    starts_at: datetime | None = None,
    now: datetime | None = None,
) -> Silence:
    """Insert a new silence and return it.

    Parameters
    ----------
    matchers : sequence of Matcher
        At least one, and at least one that does not match the empty string,
        so a silence never mutes every alert by accident.
    ends_at : datetime
        Aware UTC end, later than the start.
    starts_at : datetime, optional
        Aware UTC start; defaults to now.

    Raises
    ------
    SilenceError
        If a field is missing or the times are naive or out of order.
    """
    created_at = now or datetime.now(UTC)
    start = starts_at or created_at
    _check_new_silence(matchers, start, ends_at, comment, created_by)
    silence = Silence(
        id=str(uuid.uuid4()),
        matchers=tuple(matchers),
        starts_at=start.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC),
        comment=comment.strip(),
        created_by=created_by.strip(),
        created_at=created_at.astimezone(UTC),
    )
    connection.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, "
        "created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            silence.id,
            json.dumps([matcher.to_dict() for matcher in silence.matchers]),
            silence.starts_at.timestamp(),
            silence.ends_at.timestamp(),
            silence.comment,
            silence.created_by,
            silence.created_at.timestamp(),
            silence.created_at.timestamp(),
        ),
    )
    return silence


def get_silence(connection: sqlite3.Connection, silence_id: str) -> Silence:
    """Read one silence.

    Raises
    ------
    SilenceError
        If no silence has this id.
    """
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,)
    ).fetchone()
    if row is None:
        raise SilenceError(
            f"Silence {silence_id!r} not found; run `krwatch silence list --all` "
            "to see the ids."
        )

    return _silence_from_row(row)


def list_silences(
    connection: sqlite3.Connection,
    *,
    states: Iterable[SilenceState] | None = None,
    now: datetime | None = None,
) -> list[Silence]:
    """Return silences in the given states (all by default), newest first."""
    moment = now or datetime.now(UTC)
    selected = set(SILENCE_STATES if states is None else states)
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM silences ORDER BY created_at DESC, id"
    ).fetchall()
    silences = [_silence_from_row(row) for row in rows]
    return [silence for silence in silences if silence.state(moment) in selected]


def active_silences(
    connection: sqlite3.Connection, now: datetime | None = None
) -> list[Silence]:
    """Return the silences that are active at ``now``."""
    moment = (now or datetime.now(UTC)).timestamp()
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE starts_at <= ? AND ends_at > ?",
        (moment, moment),
    ).fetchall()
    return [_silence_from_row(row) for row in rows]


def expire_silence(
    connection: sqlite3.Connection, silence_id: str, now: datetime | None = None
) -> Silence:
    """End a silence now; a pending silence ends before it starts.

    Raises
    ------
    SilenceError
        If no silence has this id or it has already expired.
    """
    moment = now or datetime.now(UTC)
    silence = get_silence(connection, silence_id)
    if silence.state(moment) == "expired":
        raise SilenceError(
            f"Silence {silence_id!r} already expired at "
            f"{_format(silence.ends_at)}; nothing to do."
        )

    starts_at = min(silence.starts_at, moment)
    connection.execute(
        "UPDATE silences SET starts_at = ?, ends_at = ?, updated_at = ? WHERE id = ?",
        (starts_at.timestamp(), moment.timestamp(), moment.timestamp(), silence_id),
    )
    return get_silence(connection, silence_id)


class Silences:
    """Silences in the store, for the HTTP API and the CLI.

    Each method runs in its own store transaction or read.
    """

    def __init__(self, store: StoreLike) -> None:
        self._store = store

    def create(
        self,
        *,
        matchers: Sequence[Matcher],
        ends_at: datetime,
        comment: str,
        created_by: str,
        starts_at: datetime | None = None,
    ) -> Silence:
        """Insert a silence; see ``create_silence``."""
        with self._store.transaction() as connection:
            return create_silence(
                connection,
                matchers=matchers,
                ends_at=ends_at,
                comment=comment,
                created_by=created_by,
                starts_at=starts_at,
            )

    def get(self, silence_id: str) -> Silence:
        with self._store.read() as connection:
            return get_silence(connection, silence_id)

    def list(
        self, states: Iterable[SilenceState] | None = None
    ) -> builtins.list[Silence]:
        with self._store.read() as connection:
            return list_silences(connection, states=states)

    def active(self, now: datetime | None = None) -> builtins.list[Silence]:
        with self._store.read() as connection:
            return active_silences(connection, now)

    def expire(self, silence_id: str) -> Silence:
        """End a silence now; see ``expire_silence``."""
        with self._store.transaction() as connection:
            return expire_silence(connection, silence_id)


def add_silence_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``krwatch silence add|list|expire`` to the CLI's subparsers.

    The caller adds its shared options (such as ``-c``) to the returned
    parser or to a parent parser, then calls ``run_silence_command``.
    """
    parser = subparsers.add_parser(
        "silence", help="Create, list and expire notification silences."
    )
    commands = parser.add_subparsers(dest="silence_command", required=True)

    add = commands.add_parser("add", help="Create a silence.")
    add.add_argument(
        "matchers",
        nargs="+",
        metavar="MATCHER",
        help="Label matcher: name=value, name!=value, name=~regex or name!~regex, "
        'such as alertname=ChurnAboveLimit or severity=~"critical|error".',
    )
    add.add_argument("--comment", required=True, help="Why the alerts are silenced.")
    add.add_argument("--author", required=True, help="Who creates the silence.")
    add.add_argument(
        "--duration",
        default=format_duration(DEFAULT_SILENCE_DURATION),
        help="How long the silence lasts from its start, such as 30m or 1d "
        "(default: %(default)s). Ignored when --end is given.",
    )
    add.add_argument(
        "--start", help="Start time in ISO 8601 (default: now; no offset means UTC)."
    )
    add.add_argument("--end", help="End time in ISO 8601 (no offset means UTC).")

    listing = commands.add_parser(
        "list", help="List silences, active and pending first."
    )
    listing.add_argument(
        "--all", action="store_true", help="Also list expired silences."
    )
    listing.add_argument(
        "--json", action="store_true", help="Write one JSON object per line."
    )

    expire = commands.add_parser("expire", help="End silences now.")
    expire.add_argument("ids", nargs="+", metavar="ID", help="Silence id.")
    return parser


def run_silence_command(
    args: argparse.Namespace,
    config: Config,
    *,
    store: StoreLike | None = None,
    out: TextIO | None = None,
) -> int:
    """Run a parsed ``krwatch silence`` command and return the exit code.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by the parser from ``add_silence_commands``.
    config : Config
        Loaded configuration; its ``storage.path`` names the store.
    store : StoreLike, optional
        Store to use; by default ``monitor.store.Store`` on
        ``config.storage.path``. That is safe while the daemon runs, because
        SQLite in WAL mode lets two processes write in turn.
    out : TextIO, optional
        Where results go; defaults to standard output. Errors go to standard
        error with exit code 1.
    """
    stream = out or sys.stdout
    opened = None
    if store is None:
        from monitor.store import Store

        opened = Store(config.resolve(config.storage.path))
        _create_tables_in(opened)
        store = opened
    try:
        return _run(args, Silences(store), stream)
    except (SilenceError, MatcherError, DurationError, ValueError) as error:
        sys.stderr.write(f"krwatch silence: {error}\n")
        return 1
    finally:
        if opened is not None:
            opened.close()


def _create_tables_in(store: StoreLike) -> None:
    with store.transaction() as connection:
        create_tables(connection)


def _run(args: argparse.Namespace, silences: Silences, out: TextIO) -> int:
    if args.silence_command == "add":
        matchers = [parse_matcher(text) for text in args.matchers]
        starts_at = _parse_cli_time(args.start) if args.start else None
        start = starts_at or datetime.now(UTC)
        if args.end:
            ends_at = _parse_cli_time(args.end)
        else:
            ends_at = start + parse_duration(args.duration)
        silence = silences.create(
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=args.comment,
            created_by=args.author,
        )
        out.write(f"{silence.id}\n")
        return 0

    if args.silence_command == "list":
        states: tuple[SilenceState, ...] = (
            SILENCE_STATES if args.all else ("pending", "active")
        )
        for silence in silences.list(states):
            out.write(_describe(silence, as_json=args.json) + "\n")
        return 0

    for silence_id in args.ids:
        silence = silences.expire(silence_id)
        out.write(f"Expired {silence.id} at {_format(silence.ends_at)}\n")
    return 0


def _describe(silence: Silence, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(silence.to_dict(), sort_keys=True)

    matchers = ", ".join(str(matcher) for matcher in silence.matchers)
    return (
        f"{silence.id}  {silence.state():8}  {_format(silence.starts_at)} to "
        f"{_format(silence.ends_at)}  {{{matchers}}}  by {silence.created_by}: "
        f"{silence.comment}"
    )


def _check_new_silence(
    matchers: Sequence[Matcher],
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
    created_by: str,
) -> None:
    if not matchers:
        raise SilenceError(
            "A silence needs at least one matcher, such as alertname=ChurnAboveLimit."
        )

    if all(matcher.matches({}) for matcher in matchers):
        matcher_text = ", ".join(str(matcher) for matcher in matchers)
        raise SilenceError(
            f"The matchers {{{matcher_text}}} also match an alert without labels, so "
            "they would silence every alert; add a matcher that requires a "
            "label value, such as alertname=ChurnAboveLimit."
        )

    for name, moment in (("start", starts_at), ("end", ends_at)):
        if moment.utcoffset() is None:
            raise SilenceError(
                f"The silence {name} {moment.isoformat()!r} has no time zone; "
                "pass a timezone-aware UTC time."
            )

    if ends_at <= starts_at:
        raise SilenceError(
            f"The silence end {_format(ends_at)} is not after its start "
            f"{_format(starts_at)}; give a later end or a positive duration."
        )

    if not comment.strip():
        raise SilenceError(
            "The silence comment is missing; give the reason for the silence."
        )

    if not created_by.strip():
        raise SilenceError(
            "The silence author (created_by) is missing; give who creates it."
        )


_COLUMNS = "id, matchers, starts_at, ends_at, comment, created_by, created_at"


def _silence_from_row(row: Sequence[object]) -> Silence:
    identifier, matchers, starts_at, ends_at, comment, created_by, created_at = row
    return Silence(
        id=str(identifier),
        matchers=tuple(Matcher.from_dict(item) for item in json.loads(str(matchers))),
        starts_at=_from_epoch(starts_at),
        ends_at=_from_epoch(ends_at),
        comment=str(comment),
        created_by=str(created_by),
        created_at=_from_epoch(created_at),
    )


def _from_epoch(value: object) -> datetime:
    return datetime.fromtimestamp(float(str(value)), UTC)


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_cli_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SilenceError(
            f"Invalid time {text!r}; write ISO 8601, such as 2026-03-01T09:00:00Z."
        ) from None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
