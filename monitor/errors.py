"""Exceptions of the krwatch service."""

from __future__ import annotations


class KrwatchError(Exception):
    """Root of every exception that krwatch raises on purpose."""


class ConfigError(KrwatchError):
    """A configuration or rule file is invalid.

    Parameters
    ----------
    problems : list of str
        One line per problem, each starting with ``path:line:`` and the field
        path.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class FieldValueError(ValueError):
    """A settings class rejected the value of one of its own fields.

    Raised from ``__post_init__`` so the config reader can point at the
    line of that field instead of the line of the whole mapping.

    Parameters
    ----------
    field : str
        The key of the field as written in YAML.
    message : str
        Full sentence naming the problem and the fix.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class SourceError(KrwatchError):
    """A poll of a source failed or returned a value that was rejected.

    Parameters
    ----------
    reason : str
        Short, bounded reason used as a metric label, such as ``timeout``,
        ``http_status``, ``invalid_json`` or ``invalid_value``.
    message : str
        Full sentence for the log.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class StoreError(KrwatchError):
    """The sample store cannot be opened or has an unsupported schema."""
