"""Configuration loading: strict YAML into frozen dataclasses.

``load_config`` reads the main file into ``monitor.config.model.Config`` and
raises ``monitor.errors.ConfigError`` listing every problem of the file, each
as ``path:line: field.path: message``. ``check_files`` runs the same checks on
the main file and its rule files and returns the problems instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from monitor.config._loader import LoadResult, load, load_storage, resolve_rule_files
from monitor.config.model import Config
from monitor.errors import ConfigError

__all__ = [
    "Config",
    "check_files",
    "load_config",
    "load_storage",
    "resolve_rule_files",
]


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    source_types: Mapping[str, Any] | None = None,
    receiver_types: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate the main configuration file.

    Parameters
    ----------
    path : str or path-like
        The configuration file. Relative paths inside it, such as rule file
        globs, are resolved against its folder; ``Config.path`` is absolute.
    environ : mapping of str to str, optional
        Environment for ``${NAME}`` references in secret fields; defaults to
        ``os.environ``.
    source_types : mapping, optional
        Source type name to a class with ``settings_class`` and
        ``query_class`` dataclasses; defaults to
        ``monitor.sources.SOURCE_TYPES``.
    receiver_types : mapping, optional
        Receiver type name to a class with a ``settings_class`` dataclass;
        defaults to ``exporters.receivers.RECEIVER_TYPES``.

    Returns
    -------
    Config
        The parsed configuration. Rule files are not read; see
        ``rules.loader.load_rule_files``.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable or invalid. ``problems`` lists
        every problem found, sorted by line.
    """
    result = _load(path, environ, source_types, receiver_types)
    if result.config is None:
        raise ConfigError([str(problem) for problem in result.problems])
    return result.config


def check_files(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    source_types: Mapping[str, Any] | None = None,
    receiver_types: Mapping[str, Any] | None = None,
) -> list[str]:
    """Validate the configuration file and every rule file it names.

    Rule files are checked even when the main file has problems, for each
    entry of ``rule_files`` that can be read. Parameters are those of
    ``load_config``.

    Returns
    -------
    list of str
        Every problem, one formatted message each; empty when all files are
        valid.
    """
    from rules.loader import collect_rule_files

    result = _load(path, environ, source_types, receiver_types)
    problems = [str(problem) for problem in result.problems]
    _, rule_problems = collect_rule_files(
        result.rule_paths,
        kpis=result.kpi_names,
        key_results=result.key_result_names,
    )
    problems.extend(str(problem) for problem in rule_problems)
    return problems


def _load(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None,
    source_types: Mapping[str, Any] | None,
    receiver_types: Mapping[str, Any] | None,
) -> LoadResult:
    if source_types is None:
        from monitor.sources import SOURCE_TYPES

        source_types = SOURCE_TYPES
    if receiver_types is None:
        from exporters.receivers import RECEIVER_TYPES

        receiver_types = RECEIVER_TYPES
    return load(
        path,
        environ=os.environ if environ is None else environ,
        source_types=source_types,
        receiver_types=receiver_types,
    )
