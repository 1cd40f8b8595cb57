from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _receiver_server import Reply, free_port, running_server
from conftest import KEY_RESULT, make_notification

from exporters.dispatcher import Dispatcher
from exporters.errors import DeliveryError
from exporters.outbox import enqueue
from exporters.receivers import RECEIVER_TYPES, build_receivers
from exporters.receivers.base import create_session, parse_retry_after
from exporters.receivers.log import LogReceiver, LogSettings
from exporters.receivers.pagerduty import (
    PagerDutyReceiver,
    PagerDutySettings,
    build_event,
    map_severity,
)
from exporters.receivers.slack import (
    MAX_BLOCKS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    SlackReceiver,
    SlackSettings,
    build_message,
)
from exporters.receivers.webhook import WebhookReceiver, WebhookSettings, sign
from monitor.config.model import ReceiverConfig
from monitor.secrets import Secret
from monitor.store import Store

ROUTING_KEY = "R0UT1NGKEYSECRET0000000000000000"
TOKEN = "hook-token-0123456789"


def test_receiver_types_registry_lists_every_type() -> None:
    assert sorted(RECEIVER_TYPES) == [
        "alertmanager",
        "log",
        "pagerduty",
        "slack",
        "webhook",
    ]
    for name, receiver_class in RECEIVER_TYPES.items():
        assert receiver_class.type_name == name


def test_build_receivers_rejects_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unknown type 'email'; use one of alertmanager"
    ):
        build_receivers([ReceiverConfig(name="mail", type="email")], base_dir=tmp_path)


def test_pagerduty_trigger_event_exact_structure() -> None:
    notification = make_notification(
        annotations={
            "summary": "Ridership forecast misses the weekly target",
            "runbook_url": "https://runbooks.example/ridership",
            "image_url": "https://grafana.example/render/ridership.png",
        }
    )
    settings = PagerDutySettings(routing_key=Secret(ROUTING_KEY))

    event = build_event(notification, settings)

    assert event == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": notification.fingerprint,
        "payload": {
            "summary": "Ridership forecast misses the weekly target",
            "source": "taxi_trips",
            "severity": "critical",
            "timestamp": "2026-03-02T09:05:00Z",
            "component": "taxi_trips",
            "group": "grow_ridership",
            "class": "RidershipForecastMiss",
            "custom_details": {
                "labels": {
                    "alertname": "RidershipForecastMiss",
                    "severity": "critical",
                },
                "annotations": dict(notification.annotations),
                "value": 0.12,
                "active_at": "2026-03-02T09:00:00Z",
                "idempotency_key": notification.idempotency_key,
                "key_result": KEY_RESULT,
                "kpi": {"name": "taxi_trips", "unit": "passengers", "downstream": []},
            },
        },
        "client": "krwatch",
        "client_url": notification.generator_url,
        "links": [
            {"href": notification.generator_url, "text": "Rule in krwatch"},
            {"href": "https://runbooks.example/ridership", "text": "Runbook"},
        ],
        "images": [
            {
                "src": "https://grafana.example/render/ridership.png",
                "alt": "Ridership forecast misses the weekly target",
                "href": notification.generator_url,
            }
        ],
    }


def test_pagerduty_resolve_event_exact_structure() -> None:
    notification = make_notification(state="resolved")
    settings = PagerDutySettings(routing_key=Secret(ROUTING_KEY))

    assert build_event(notification, settings) == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": notification.fingerprint,
    }


def test_pagerduty_dedup_key_equal_for_trigger_and_resolve() -> None:
    settings = PagerDutySettings(routing_key=Secret(ROUTING_KEY))
    trigger = build_event(make_notification(), settings)
    resolve = build_event(make_notification(state="resolved"), settings)

    assert trigger["dedup_key"] == resolve["dedup_key"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("ERROR", "error"),
        ("high", "error"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("info", "info"),
        ("low", "info"),
        ("", "error"),
        ("bogus", "error"),
    ],
    ids=[
        "critical",
        "page",
        "upper-case",
        "high",
        "warning",
        "warn",
        "info",
        "low",
        "missing",
        "unknown",
    ],
)
def test_pagerduty_severity_mapping(value: str, expected: str) -> None:
    assert map_severity({"severity": value}, "severity", "error") == expected


def test_pagerduty_summary_cut_to_1024_chars() -> None:
    notification = make_notification(annotations={"summary": "x" * 5000})
    event = build_event(
        notification, PagerDutySettings(routing_key=Secret(ROUTING_KEY))
    )

    assert len(event["payload"]["summary"]) == 1024


def test_pagerduty_receiver_posts_one_event_each() -> None:
    with running_server(lambda request: Reply(202, b'{"status":"success"}')) as server:
        receiver = PagerDutyReceiver(
            "pd",
            PagerDutySettings(
                routing_key=Secret(ROUTING_KEY), url=server.url + "/v2/enqueue"
            ),
            session=create_session(),
        )
        receiver.deliver([make_notification(), make_notification(state="resolved")])
        requests = server.snapshot()

    assert [request.path for request in requests] == ["/v2/enqueue", "/v2/enqueue"]
    assert [request.json()["event_action"] for request in requests] == [
        "trigger",
        "resolve",
    ]
    assert requests[0].headers["content-type"] == "application/json"
    assert receiver.max_batch_size == 1


def test_slack_message_exact_structure() -> None:
    notification = make_notification(
        annotations={
            "summary": "Ridership forecast <misses> the target",
            "description": "Forecast & band are below plan.",
            "runbook_url": "https://runbooks.example/ridership",
        },
        kpi={"name": "taxi_trips", "downstream": ["fleet_utilisation"]},
    )

    message = build_message([notification], SlackSettings(url=Secret(TOKEN)))

    assert message == {
        "text": "[FIRING] RidershipForecastMiss: Ridership forecast <misses> the target",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": "[FIRING] RidershipForecastMiss",
                    "emoji": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Ridership forecast &lt;misses&gt; the target*\n"
                    "Forecast &amp; band are below plan.",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Value*\n0.12"},
                    {
                        "type": "mrkdwn",
                        "text": "*Key result*\nweekly_passengers (grow_ridership)",
                    },
                    {
                        "type": "mrkdwn",
                        "text": "*Forecast*\n5,900,000 vs target 6,500,000 "
                        "(80%: 5,600,000 to 6,200,000)",
                    },
                    {"type": "mrkdwn", "text": "*Attainment probability*\n12%"},
                    {"type": "mrkdwn", "text": "*Owner*\nops-lead"},
                    {"type": "mrkdwn", "text": "*Status*\noff_track"},
                    {"type": "mrkdwn", "text": "*Due*\n2026-03-08T23:59:59Z"},
                    {"type": "mrkdwn", "text": "*Decide by*\n2026-03-04"},
                    {"type": "mrkdwn", "text": "*Downstream KPIs*\nfleet_utilisation"},
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<{notification.generator_url}|Rule in krwatch>",
                    },
                    {
                        "type": "mrkdwn",
                        "text": "<https://runbooks.example/ridership|Runbook>",
                    },
                    {
                        "type": "mrkdwn",
                        "text": "alertname=RidershipForecastMiss, severity=critical",
                    },
                ],
            },
        ],
    }


def test_slack_message_within_block_kit_limits() -> None:
    long_name = "A" * 400
    notifications = [
        make_notification(
            alert=f"{long_name}{index}",
            annotations={"summary": "s" * 5000, "description": "d" * 5000},
        )
        for index in range(30)
    ]

    message = build_message(notifications, SlackSettings(url=Secret(TOKEN)))
    blocks = message["blocks"]

    assert len(blocks) <= MAX_BLOCKS
    assert blocks[-1]["elements"][0]["text"].endswith(
        "more notifications are not shown."
    )
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_CHARS
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= MAX_SECTION_CHARS
        if block["type"] == "section" and "fields" in block:
            assert len(block["fields"]) <= 10
            assert all(len(item["text"]) <= 2000 for item in block["fields"])
        if block["type"] == "context":
            assert len(block["elements"]) <= 10


def test_slack_batch_size_capped_to_fit_blocks() -> None:
    receiver = SlackReceiver(
        "chat",
        SlackSettings(url=Secret(TOKEN), max_batch_size=50),
        session=create_session(),
    )
    notifications = [make_notification(alert=f"A{index}") for index in range(10)]

    message = build_message(notifications, receiver.settings)

    assert receiver.max_batch_size == 10
    assert len(message["blocks"]) == 49
    assert [block["type"] for block in message["blocks"]].count("header") == 10


def test_slack_receiver_posts_to_secret_url() -> None:
    with running_server() as server:
        url = f"{server.url}/services/T000/B000/{TOKEN}"
        receiver = SlackReceiver(
            "chat", SlackSettings(url=Secret(url)), session=create_session()
        )
        receiver.deliver([make_notification()])
        requests = server.snapshot()

    assert requests[0].path == f"/services/T000/B000/{TOKEN}"
    assert requests[0].json()["blocks"][0]["type"] == "header"


def test_webhook_body_version_and_signature() -> None:
    secret = "signing-secret-abc"
    with running_server() as server:
        receiver = WebhookReceiver(
            "hook",
            WebhookSettings(
                url=Secret(server.url + "/hook"),
                signing_secret=Secret(secret),
                headers={"Authorization": Secret(f"Bearer {TOKEN}")},
            ),
            session=create_session(),
        )
        notification = make_notification()
        receiver.deliver([notification])
        request = server.snapshot()[0]

    body = request.json()
    timestamp = request.headers["x-krwatch-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["x-krwatch-signature"] == f"sha256={expected}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["idempotency-key"] == notification.idempotency_key
    assert body["version"] == "1"
    assert body["receiver"] == "hook"
    assert body["status"] == "firing"
    assert body["notifications"] == [notification.to_dict()]


def test_webhook_sign_matches_reference_digest() -> None:
    digest = hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()

    assert sign("key", "1700000000", b"{}") == f"sha256={digest}"


def test_webhook_body_matches_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(__file__).resolve().parents[2] / "docs" / "webhook-schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    with running_server() as server:
        receiver = WebhookReceiver(
            "hook", WebhookSettings(url=Secret(server.url)), session=create_session()
        )
        receiver.deliver([make_notification(), make_notification(state="resolved")])
        body = server.snapshot()[0].json()

    jsonschema.validate(body, schema)
    example = json.loads(
        (schema_path.parent / "webhook-example.json").read_text(encoding="utf-8")
    )
    jsonschema.validate(example, schema)


def test_log_receiver_appends_json_lines(tmp_path: Path) -> None:
    receiver = LogReceiver(
        "ops_log",
        LogSettings(path="notifications.jsonl"),
        session=create_session(),
        base_dir=tmp_path,
    )
    receiver.deliver([make_notification()])
    receiver.deliver([make_notification(state="resolved")])

    lines = (tmp_path / "notifications.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["firing", "resolved"]
    assert json.loads(lines[0])["receiver"] == "ops_log"


def test_log_receiver_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    receiver = LogReceiver("ops_log", LogSettings(), session=create_session())
    receiver.deliver([make_notification()])

    line = json.loads(capsys.readouterr().out)
    assert line["alert"] == "RidershipForecastMiss"


def test_log_receiver_missing_folder_is_retryable(tmp_path: Path) -> None:
    receiver = LogReceiver(
        "ops_log",
        LogSettings(path="missing/notifications.jsonl"),
        session=create_session(),
        base_dir=tmp_path,
    )
    with pytest.raises(DeliveryError, match="cannot append to") as caught:
        receiver.deliver([make_notification()])

    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (404, False), (410, False), (429, True), (500, True), (503, True)],
    ids=["400", "404", "410", "429", "500", "503"],
)
def test_http_status_sets_retryable(status: int, retryable: bool) -> None:
    with running_server(lambda request: Reply(status, b"no_service")) as server:
        receiver = WebhookReceiver(
            "hook", WebhookSettings(url=Secret(server.url)), session=create_session()
        )
        with pytest.raises(DeliveryError, match=f"returned HTTP {status}") as caught:
            receiver.deliver([make_notification()])

    assert caught.value.retryable is retryable
    assert caught.value.status == status


def test_http_connection_refused_is_retryable() -> None:
    receiver = WebhookReceiver(
        "hook",
        WebhookSettings(url=Secret(f"http://127.0.0.1:{free_port()}/x")),
        session=create_session(),
    )
    with pytest.raises(DeliveryError, match="failed with ConnectionError") as caught:
        receiver.deliver([make_notification()])

    assert caught.value.retryable is True
    assert caught.value.status is None


def test_http_timeout_is_retryable() -> None:
    import threading

    release = threading.Event()

    def stall(request: Any) -> Reply:
        release.wait(5)
        return Reply(200)

    with running_server(stall) as server:
        receiver = WebhookReceiver(
            "hook",
            WebhookSettings(
                url=Secret(server.url), timeout=timedelta(milliseconds=200)
            ),
            session=create_session(),
        )
        try:
            with pytest.raises(DeliveryError, match="timed out after 0.2s") as caught:
                receiver.deliver([make_notification()])
        finally:
            release.set()

    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("Mon, 02 Mar 2026 10:00:30 GMT", 30.0),
        ("Mon, 02 Mar 2026 09:59:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
    ids=["seconds", "zero", "negative", "http-date", "past-date", "invalid", "absent"],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    assert parse_retry_after(header, now) == expected


def test_secrets_never_in_logs_errors_or_reprs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"
    receivers = {
        "hook": WebhookReceiver(
            "hook",
            WebhookSettings(
                url=Secret(secret_url),
                headers={"Authorization": Secret(f"Bearer {TOKEN}")},
                signing_secret=Secret(TOKEN),
            ),
            session=create_session(),
        ),
        "chat": SlackReceiver(
            "chat", SlackSettings(url=Secret(secret_url)), session=create_session()
        ),
        "pd": PagerDutyReceiver(
            "pd",
            PagerDutySettings(
                routing_key=Secret(ROUTING_KEY),
                url=f"http://127.0.0.1:{free_port()}/v2/enqueue",
            ),
            session=create_session(),
        ),
    }
    with store.transaction() as connection:
        enqueue(connection, make_notification(), list(receivers))
    caplog.set_level(logging.DEBUG)
    dispatcher = Dispatcher(store, receivers)
    errors = []
    for name, receiver in receivers.items():
        dispatcher.run_once(name)
        try:
            receiver.deliver([make_notification()])
        except DeliveryError as error:
            errors.append(error)
    with store.read() as connection:
        stored_errors = [
            row[0] for row in connection.execute("SELECT last_error FROM outbox")
        ]

    texts = [
        caplog.text,
        *(str(error) for error in errors),
        *(repr(error) for error in errors),
        *(repr(receiver) for receiver in receivers.values()),
        *(repr(receiver.settings) for receiver in receivers.values()),
        *stored_errors,
    ]
    assert len(errors) == 3
    assert "Retrying in" in caplog.text
    for text in texts:
        assert TOKEN not in text
        assert ROUTING_KEY not in text
