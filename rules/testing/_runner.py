"""Run rule test files through the real evaluation cycle and report failures."""

from __future__ import annotations

import difflib
import glob
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from monitor.config import load_config
from monitor.config._schema import INVALID, Reader
from monitor.config._yaml import Problem, read_document
from monitor.config.model import (
    Config,
    EvaluationConfig,
    KeyResultConfig,
    KPIConfig,
    ObjectiveConfig,
    SourceConfig,
)
from monitor.durations import format_duration
from monitor.errors import ConfigError
from monitor.series import Sample
from rules.backtest import Replay
from rules.loader import collect_rule_files
from rules.model import RuleGroup
from rules.testing._model import (
    AlertRuleCheck,
    KeyResultCheck,
    RuleTestCase,
    RuleTestFile,
)
from rules.testing._series import NotationError, expand_values, parse_series

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = timedelta(minutes=1)
DEFAULT_START = datetime(1970, 1, 1, tzinfo=UTC)
PROGRESS_TOLERANCE = 1e-4
"""Largest difference between expected and actual progress that passes."""

_TEST_SOURCE = "rule_tests"


@dataclass(frozen=True, kw_only=True)
class CheckFailure:
    """One check whose expectation differs from what the rules produced."""

    location: str
    """``file:line: tests[i]...`` of the check."""
    title: str
    expected: str
    actual: str

    def __str__(self) -> str:
        diff = difflib.unified_diff(
            self.expected.splitlines(),
            self.actual.splitlines(),
            fromfile="expected",
            tofile="actual",
            lineterm="",
            n=1000,
        )
        body = "\n".join(f"    {line}" for line in diff)
        return f"{self.location}: {self.title}\n{body}"


@dataclass(kw_only=True)
class FileResult:
    """The outcome of one test file."""

    path: Path
    problems: list[str] = field(default_factory=list)
    """Problems that kept the file from running, such as invalid YAML."""
    checks: int = 0
    failures: list[CheckFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and not self.failures


def run_test_file(path: str | Path) -> FileResult:
    """Read one rule test file, run each of its tests and compare the checks.

    Parameters
    ----------
    path : str or path-like
        The test file.

    Returns
    -------
    FileResult
        ``problems`` lists why the file could not run; ``failures`` lists
        each check that failed, with expected and actual text.
    """
    path = Path(path)
    result = FileResult(path=path)
    display = str(path)
    document = read_document(path.absolute(), display)
    if document.root is None:
        result.problems = _sorted_problems(document.problems)
        return result

    reader = Reader(document, environ={})
    spec = reader.read_dataclass(RuleTestFile, document.root, ())
    if spec is INVALID or document.problems:
        result.problems = _sorted_problems(document.problems)
        return result

    try:
        base = _base_config(path, spec)
        groups = _load_rules(path, spec, base)
    except ConfigError as error:
        result.problems = list(error.problems)
        return result

    for index, case in enumerate(spec.tests):
        try:
            _run_case(result, base, groups, case, spec, reader, index)
        except NotationError as error:
            line = reader.line_of(("tests", index, "input_series"))
            result.problems.append(f"{display}:{line}: tests[{index}]: {error}")
    if result.checks == 0 and not result.problems:
        # A file without checks is usually a mistake, such as a rule file
        # given in place of its test file, so it must not report success.
        result.problems.append(
            f"{display}:1: the file has no checks; add tests with "
            "alert_rule_test or key_result_test entries."
        )
    return result


def _sorted_problems(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in sorted(problems, key=lambda p: p.line)]


def _base_config(path: Path, spec: RuleTestFile) -> Config:
    if spec.config is not None:
        config = load_config(path.parent / spec.config)
    else:
        config = Config(path=path.absolute())
    interval = spec.evaluation_interval
    if interval is not None:
        config = replace(config, evaluation=EvaluationConfig(interval=interval))

    kpis = list(config.kpis)
    known = {kpi.name for kpi in kpis}
    for inline in spec.kpis:
        if inline.name in known:
            raise ConfigError(
                [f"{path}: KPI {inline.name!r} is defined twice; rename one of them."]
            )
        known.add(inline.name)
        kpis.append(
            KPIConfig(
                name=inline.name,
                source=_TEST_SOURCE,
                help=inline.help,
                unit=inline.unit,
                stale_after=inline.stale_after,
                drives=inline.drives,
            )
        )
    objectives = list(config.objectives)
    for inline_kr in spec.key_results:
        key_result = KeyResultConfig(
            name=inline_kr.name,
            kpi=inline_kr.kpi,
            objective=inline_kr.objective,
            owner=inline_kr.owner,
            measure=inline_kr.measure,
            direction=inline_kr.direction,
            baseline=inline_kr.baseline,
            target=inline_kr.target,
            labels=inline_kr.labels,
            start=inline_kr.start,
            due=inline_kr.due,
            period=inline_kr.period,
        )
        objectives.append(
            ObjectiveConfig(
                name=inline_kr.objective,
                owner=inline_kr.owner,
                key_results=(key_result,),
            )
        )
    return replace(config, kpis=tuple(kpis), objectives=tuple(objectives))


def _load_rules(
    path: Path, spec: RuleTestFile, config: Config
) -> tuple[RuleGroup, ...]:
    paths: list[Path] = []
    for pattern in spec.rule_files:
        matches = sorted(glob.glob(pattern, root_dir=path.parent, recursive=True))
        if not matches:
            raise ConfigError(
                [
                    f"{path}: rule_files: {pattern!r} matches no file in "
                    f"{str(path.parent)!r}; paths are relative to the test file."
                ]
            )
        paths.extend(path.parent / match for match in matches)

    defined = spec.config is not None or bool(spec.kpis)
    kpis = [kpi.name for kpi in config.kpis] if defined else None
    key_results = [kr.name for kr in config.key_results] if defined else None
    groups, problems = collect_rule_files(
        list(dict.fromkeys(paths)), kpis=kpis, key_results=key_results
    )
    if problems:
        raise ConfigError([str(problem) for problem in problems])
    return groups


def _case_config(base: Config, interval: timedelta) -> Config:
    """Add the source that inline KPIs read, so their staleness defaults work."""
    source = SourceConfig(name=_TEST_SOURCE, type=_TEST_SOURCE, interval=interval)
    sources = tuple(s for s in base.sources if s.name != _TEST_SOURCE)
    return replace(base, sources=(*sources, source))


def _run_case(
    result: FileResult,
    base: Config,
    groups: Sequence[RuleGroup],
    case: RuleTestCase,
    spec: RuleTestFile,
    reader: Reader,
    index: int,
) -> None:
    interval = case.interval or spec.evaluation_interval or base.evaluation.interval
    start = (case.start or DEFAULT_START).astimezone(UTC).timestamp()
    config = _case_config(base, interval)
    samples = _samples(case, start, interval.total_seconds())
    replay = Replay(config, groups, start=start)
    replay.add_samples(samples)
    rules = {rule.alert: rule for group in groups for rule in group.rules}

    name = f" ({case.name})" if case.name else ""
    checks: list[tuple[float, str, AlertRuleCheck | KeyResultCheck]] = []
    listed: list[tuple[str, Sequence[AlertRuleCheck | KeyResultCheck]]] = [
        ("alert_rule_test", case.alert_rule_test),
        ("key_result_test", case.key_result_test),
    ]
    for section, items in listed:
        for position, check in enumerate(items):
            line = reader.line_of(("tests", index, section, position))
            label = (
                f"{reader.document.file}:{line}: tests[{index}]{name}."
                f"{section}[{position}]"
            )
            checks.append((check.eval_time.total_seconds(), label, check))

    try:
        for offset, label, check in sorted(checks, key=lambda item: item[0]):
            replay.run_until(start + offset)
            result.checks += 1
            if isinstance(check, AlertRuleCheck):
                failure = _check_alerts(replay, check, label, rules)
            else:
                failure = _check_key_result(replay, check, label)
            if failure is not None:
                result.failures.append(failure)
    finally:
        replay.close()


def _samples(case: RuleTestCase, start: float, step_seconds: float) -> list[Sample]:
    samples = []
    for item in case.input_series:
        key = parse_series(item.series)
        for position, value in enumerate(expand_values(item.values)):
            if value is None:
                continue
            samples.append(Sample(key, start + position * step_seconds, value))
    return samples


def _check_alerts(
    replay: Replay, check: AlertRuleCheck, label: str, rules: Mapping[str, Any]
) -> CheckFailure | None:
    last_firing: dict[str, Mapping[str, str]] = {}
    for notification in replay.notifications:
        if notification.state == "firing":
            last_firing[notification.fingerprint] = notification.annotations
    actual = []
    for state in replay.firing_alerts(check.alertname):
        labels = {k: v for k, v in state.labels.items() if k != "alertname"}
        annotations = last_firing.get(state.fingerprint, {})
        actual.append({"labels": labels, "annotations": dict(annotations)})
    expected = [
        {"labels": dict(alert.exp_labels), "annotations": dict(alert.exp_annotations)}
        for alert in check.exp_alerts
    ]
    # Annotations that the test does not list are not compared, so a test
    # can check labels only; an expected annotation must match exactly.
    for item in actual:
        match = next((e for e in expected if e["labels"] == item["labels"]), None)
        wanted = match["annotations"] if match is not None else {}
        item["annotations"] = {
            name: text for name, text in item["annotations"].items() if name in wanted
        }
    expected_text = _alerts_text(expected)
    actual_text = _alerts_text(actual)
    if expected_text == actual_text:
        return None

    when = _format_offset(check.eval_time)
    return CheckFailure(
        location=label,
        title=f"alertname {check.alertname} at eval_time {when}: the firing alerts "
        "differ from exp_alerts.",
        expected=expected_text,
        actual=actual_text,
    )


def _alerts_text(alerts: list[dict[str, dict[str, str]]]) -> str:
    if not alerts:
        return "(no firing alerts)\n"
    ordered = sorted(alerts, key=lambda item: sorted(item["labels"].items()))
    for item in ordered:
        if not item["annotations"]:
            del item["annotations"]
    return yaml.safe_dump(ordered, sort_keys=True, default_flow_style=False, width=88)


def _check_key_result(
    replay: Replay, check: KeyResultCheck, label: str
) -> CheckFailure | None:
    status = replay.statuses.get(check.key_result)
    expected: dict[str, str] = {"status": check.exp_status}
    actual: dict[str, object] = {
        "status": "no status" if status is None else status.status
    }
    progress_ok = True
    if check.exp_progress is not None:
        expected["progress"] = f"{check.exp_progress:.4f}"
        progress = math.nan if status is None else float(status.progress)
        actual["progress"] = f"{progress:.4f}"
        progress_ok = abs(progress - check.exp_progress) <= PROGRESS_TOLERANCE
    if status is not None and status.status == check.exp_status and progress_ok:
        return None

    if status is not None and status.forecast.reason:
        actual["reason"] = status.forecast.reason
    when = _format_offset(check.eval_time)
    return CheckFailure(
        location=label,
        title=f"key result {check.key_result} at eval_time {when}: the status "
        "differs from exp_status.",
        expected=yaml.safe_dump(expected, sort_keys=True),
        actual=yaml.safe_dump(actual, sort_keys=True),
    )


def _format_offset(offset: timedelta) -> str:
    return format_duration(offset)
