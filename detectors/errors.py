"""Exceptions and warnings raised by the anomaly detectors."""

from __future__ import annotations

from monitor.errors import KrwatchError


class DetectorError(KrwatchError):
    """Root of the errors that a detector raises on purpose."""


class InvalidParameterError(DetectorError, ValueError):
    """A detector parameter is outside its declared constraints.

    Parameters
    ----------
    parameter : str
        Name of the parameter, as passed to ``__init__``.
    estimator : str
        Class name of the detector.
    allowed : str
        The allowed values, in words, such as ``"an int in the range [3, inf)"``.
    value : object
        The value that was received.
    """

    def __init__(self, *, parameter: str, estimator: str, allowed: str, value: object):
        self.parameter = parameter
        self.estimator = estimator
        self.allowed = allowed
        self.value = value
        super().__init__(
            f"The {parameter!r} parameter of {estimator} must be {allowed}; "
            f"got {value!r}. Pass a value that meets this constraint."
        )


class UnknownDetectorError(DetectorError, KeyError):
    """A detector type name is not in the registry."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class NotFittedError(DetectorError, ValueError, AttributeError):
    """A detector was asked to score before ``fit`` was called."""


class InputShapeError(DetectorError, ValueError):
    """Timestamps and values passed to a detector do not form one series."""


class DataQualityWarning(UserWarning):
    """The input has a recoverable problem: NaN values, duplicate or unordered
    timestamps. The detector skips or tolerates it and goes on."""
