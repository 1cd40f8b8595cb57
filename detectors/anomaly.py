"""Registry of the anomaly detectors by their ``type`` name in rule files."""

from __future__ import annotations

import difflib
from typing import Any

from detectors._cusum import CusumDetector
from detectors._ensemble import RobustEnsembleDetector
from detectors._ewma import EwmaDetector
from detectors._iforest import IsolationForestDetector
from detectors._likelihood import LikelihoodEnsembleDetector
from detectors._robust_z import RobustZDetector
from detectors._seasonal import SeasonalMadDetector
from detectors.base import BaseDetector, DetectorResult
from detectors.errors import UnknownDetectorError

DETECTOR_TYPES: dict[str, type[BaseDetector]] = {
    "robust_z": RobustZDetector,
    "ewma": EwmaDetector,
    "cusum": CusumDetector,
    "seasonal_mad": SeasonalMadDetector,
    "isolation_forest": IsolationForestDetector,
    "robust_ensemble": RobustEnsembleDetector,
    "likelihood_ensemble": LikelihoodEnsembleDetector,
}
"""Detector class by the ``type`` name used in anomaly rules."""


def make_detector(type_name: str, **params: Any) -> BaseDetector:
    """Create the detector registered as ``type_name`` with ``params``.

    Parameters are validated by the detector's ``fit``, not here.

    Raises
    ------
    UnknownDetectorError
        If no detector is registered under ``type_name``.
    """
    detector_class = DETECTOR_TYPES.get(type_name)
    if detector_class is None:
        close = difflib.get_close_matches(type_name, DETECTOR_TYPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownDetectorError(
            f"Unknown detector type {type_name!r}; expected one of "
            f"{', '.join(sorted(DETECTOR_TYPES))}.{hint}"
        )

    return detector_class(**params)


__all__ = [
    "DETECTOR_TYPES",
    "BaseDetector",
    "CusumDetector",
    "DetectorResult",
    "EwmaDetector",
    "IsolationForestDetector",
    "LikelihoodEnsembleDetector",
    "RobustEnsembleDetector",
    "RobustZDetector",
    "SeasonalMadDetector",
    "make_detector",
]
