"""Property tests: no YAML text makes the loaders raise anything but ConfigError."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import check_files, load_config
from monitor.errors import ConfigError
from monitor.secrets import Secret
from rules.loader import load_rule_file


@dataclass(frozen=True, kw_only=True)
class FuzzReplay:
    start: datetime
    speed: float = 1.0


@dataclass(frozen=True, kw_only=True)
class FuzzSettings:
    path: Path
    url: Secret | None = None
    headers: dict[str, Secret] = field(default_factory=dict)
    replay: FuzzReplay | None = None
    body: Any = None


@dataclass(frozen=True, kw_only=True)
class FuzzQuery:
    value: str = "value"
    labels: tuple[str, ...] = ()


class FuzzSource:
    settings_class = FuzzSettings
    query_class = FuzzQuery


class FuzzReceiver:
    settings_class = None


SOURCE_TYPES = {"csv": FuzzSource}
RECEIVER_TYPES = {"log": FuzzReceiver}
ENVIRON = {"TOKEN": "secret-value"}

# Words from the config and rule formats, so that generated documents reach
# past the top-level key check.
KEYS = [
    "server", "listen", "api_token", "storage", "path", "retention", "window",
    "evaluation", "interval", "sources", "name", "type", "timeout", "kpis",
    "source", "query", "value", "stale_after", "objectives", "owner",
    "key_results", "kpi", "measure", "direction", "baseline", "target",
    "period", "start", "due", "labels", "receivers", "route", "receiver",
    "routes", "match", "match_re", "continue", "rule_files", "replay", "speed",
    "url", "headers", "body", "groups", "rules", "alert", "expr", "for",
    "attainment_below", "<<",
]  # fmt: skip
SCALARS = [
    "csv", "log", "a", "b", "yes", "no", "on", "0100", "1e6", "1:30", "5m",
    "0s", "week", "increase", "decrease", "level", "cumulative", "true",
    "${TOKEN}", "${UNSET}", "$${X}", "2025-01-01", "2025-13-45", "~", "",
    "127.0.0.1:9464", 'kpi("a") > 1', "kpi(", "0.5", "-1", ".nan", "*",
]  # fmt: skip

scalar = st.one_of(
    st.sampled_from(SCALARS),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
documents = st.recursive(
    scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=6)),
            children,
            max_size=5,
        ),
    ),
    max_leaves=30,
)
yaml_text = st.one_of(
    st.text(max_size=300),
    documents.map(lambda value: yaml.safe_dump(value, sort_keys=False)),
    st.lists(
        st.one_of(
            st.sampled_from(KEYS + SCALARS),
            st.sampled_from(list(": -[]{}&*!|>'\"\n\t#,")),
        ),
        max_size=60,
    ).map("".join),
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _write(folder: Path, text: str) -> Path:
    path = folder / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    return path


FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("KRWATCH_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ_SETTINGS
@given(text=yaml_text)
def test_load_config_raises_only_config_error(folder: Path, text: str) -> None:
    path = _write(folder, text)

    try:
        load_config(
            path,
            environ=ENVIRON,
            source_types=SOURCE_TYPES,
            receiver_types=RECEIVER_TYPES,
        )
    except ConfigError as error:
        assert error.problems
        assert all(problem.startswith(f"{path}:") for problem in error.problems)
        assert all("secret-value" not in problem for problem in error.problems)


@FUZZ_SETTINGS
@given(text=yaml_text)
def test_check_files_returns_problem_lines(folder: Path, text: str) -> None:
    path = _write(folder, text)

    problems = check_files(
        path, environ=ENVIRON, source_types=SOURCE_TYPES, receiver_types=RECEIVER_TYPES
    )

    assert all(isinstance(problem, str) for problem in problems)
    assert all("secret-value" not in problem for problem in problems)


@FUZZ_SETTINGS
@given(text=yaml_text)
def test_load_rule_file_raises_only_config_error(folder: Path, text: str) -> None:
    path = _write(folder, text)

    try:
        load_rule_file(path, kpis=["a"], key_results=["b"])
    except ConfigError as error:
        assert error.problems
        assert all(problem.startswith(f"{path}:") for problem in error.problems)
