from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporters._matchers import Matcher, parse_matcher
from exporters.errors import SilenceError
from exporters.silences import (
    Silences,
    active_silences,
    add_silence_commands,
    create_silence,
    expire_silence,
    list_silences,
    run_silence_command,
)
from monitor.cli import main
from monitor.config.model import Config, StorageConfig
from monitor.store import Store

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHURN = [Matcher(name="alertname", operator="=", value="ChurnHigh")]


def test_silence_create_and_list_states(store: Store) -> None:
    with store.transaction() as connection:
        active = create_silence(
            connection,
            matchers=CHURN,
            ends_at=NOW + timedelta(hours=2),
            comment="Known CRM export gap.",
            created_by="ops-lead",
            now=NOW,
        )
        pending = create_silence(
            connection,
            matchers=CHURN,
            starts_at=NOW + timedelta(days=1),
            ends_at=NOW + timedelta(days=2),
            comment="Planned migration.",
            created_by="ops-lead",
            now=NOW,
        )
    with store.read() as connection:
        everything = list_silences(connection, now=NOW)
        only_active = active_silences(connection, NOW)
        later = list_silences(
            connection, states=["expired"], now=NOW + timedelta(days=3)
        )

    assert {silence.id for silence in everything} == {active.id, pending.id}
    assert [silence.id for silence in only_active] == [active.id]
    assert {silence.id for silence in later} == {active.id, pending.id}
    assert active.state(NOW) == "active"
    assert pending.state(NOW) == "pending"


def test_silence_mutes_matching_labels_only(store: Store) -> None:
    with store.transaction() as connection:
        silence = create_silence(
            connection,
            matchers=[
                parse_matcher("alertname=ChurnHigh"),
                parse_matcher("region=~eu.*"),
            ],
            ends_at=NOW + timedelta(hours=1),
            comment="EU data delayed.",
            created_by="ops-lead",
            now=NOW,
        )

    assert silence.mutes({"alertname": "ChurnHigh", "region": "eu-west"}, NOW)
    assert not silence.mutes({"alertname": "ChurnHigh", "region": "us"}, NOW)
    assert not silence.mutes(
        {"alertname": "ChurnHigh", "region": "eu-west"}, NOW + timedelta(hours=1)
    )


def test_silence_expire_ends_it_now(store: Store) -> None:
    later = NOW + timedelta(minutes=10)
    with store.transaction() as connection:
        silence = create_silence(
            connection,
            matchers=CHURN,
            ends_at=NOW + timedelta(hours=2),
            comment="Known CRM export gap.",
            created_by="ops-lead",
            now=NOW,
        )
        expired = expire_silence(connection, silence.id, now=later)

    assert expired.ends_at == later
    assert expired.state(later) == "expired"
    with store.transaction() as connection:
        with pytest.raises(SilenceError, match="already expired"):
            expire_silence(connection, silence.id, now=later)


def test_silence_expire_unknown_id(store: Store) -> None:
    with pytest.raises(SilenceError, match="Silence 'nope' not found"):
        Silences(store).expire("nope")


@pytest.mark.parametrize(
    ("matchers", "ends_at", "comment", "author", "message"),
    [
        ([], NOW + timedelta(hours=1), "c", "a", "at least one matcher"),
        (
            [Matcher(name="team", operator="=~", value=".*")],
            NOW + timedelta(hours=1),
            "c",
            "a",
            "would silence every alert",
        ),
        (CHURN, NOW, "c", "a", "is not after its start"),
        (CHURN, datetime(2026, 3, 2, 10, 0), "c", "a", "has no time zone"),
        (CHURN, NOW + timedelta(hours=1), "  ", "a", "comment is missing"),
        (
            CHURN,
            NOW + timedelta(hours=1),
            "c",
            "",
            "author \\(created_by\\) is missing",
        ),
    ],
    ids=[
        "no-matchers",
        "matches-all",
        "end-before-start",
        "naive",
        "no-comment",
        "no-author",
    ],
)
def test_silence_create_rejects(
    store: Store,
    matchers: list[Matcher],
    ends_at: datetime,
    comment: str,
    author: str,
    message: str,
) -> None:
    with store.transaction() as connection:
        with pytest.raises(SilenceError, match=message):
            create_silence(
                connection,
                matchers=matchers,
                ends_at=ends_at,
                comment=comment,
                created_by=author,
                now=NOW,
            )


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="krwatch")
    add_silence_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_silence_cli_add_list_expire(tmp_path: Path) -> None:
    config = Config(
        path=tmp_path / "krwatch.yaml", storage=StorageConfig(path=Path("data/k.db"))
    )
    out = io.StringIO()

    code = run_silence_command(
        parse(
            [
                "silence",
                "add",
                "alertname=ChurnHigh",
                'severity=~"critical|error"',
                "--duration",
                "1h",
                "--comment",
                "CRM export gap",
                "--author",
                "ops-lead",
            ]
        ),
        config,
        out=out,
    )
    silence_id = out.getvalue().strip()
    listing = io.StringIO()
    run_silence_command(parse(["silence", "list", "--json"]), config, out=listing)
    listed = json.loads(listing.getvalue())
    expire_code = run_silence_command(
        parse(["silence", "expire", silence_id]), config, out=io.StringIO()
    )
    after = io.StringIO()
    run_silence_command(parse(["silence", "list"]), config, out=after)

    assert code == 0
    assert listed["id"] == silence_id
    assert listed["matchers"] == [
        {"name": "alertname", "operator": "=", "value": "ChurnHigh"},
        {"name": "severity", "operator": "=~", "value": "critical|error"},
    ]
    assert listed["state"] == "active"
    assert listed["created_by"] == "ops-lead"
    assert expire_code == 0
    assert after.getvalue() == ""
    assert (tmp_path / "data" / "k.db").exists()


def test_silence_cli_bad_matcher_exit_1(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(path=store.path)
    code = run_silence_command(
        parse(["silence", "add", "severity", "--comment", "c", "--author", "a"]),
        config,
        store=store,
    )

    assert code == 1
    assert "Invalid matcher 'severity'" in capsys.readouterr().err


def test_silence_cli_needs_no_secret_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HOOK_URL", raising=False)
    config_path = tmp_path / "krwatch.yaml"
    config_path.write_text(
        "storage: {path: data/k.db}\n"
        "receivers:\n"
        "  - {name: hook, type: webhook, url: '${HOOK_URL}'}\n"
        "route: {receiver: hook}\n"
    )
    add = ["silence", "-c", str(config_path), "add", "alertname=ChurnHigh"]

    code = main([*add, "--comment", "CRM export gap", "--author", "ops-lead"])

    assert code == 0
    assert (tmp_path / "data" / "k.db").exists()
    assert main(["silence", "-c", str(config_path), "list"]) == 0
    assert "ChurnHigh" in capsys.readouterr().out


def test_silence_cli_invalid_storage_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "krwatch.yaml"
    config_path.write_text("storage: {retention: 1x}\n")

    assert main(["silence", "-c", str(config_path), "list"]) == 1
    assert "krwatch.yaml:1: storage.retention: Invalid duration '1x'" in (
        capsys.readouterr().err
    )
