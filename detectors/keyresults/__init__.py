"""Key result forecasting: attainment probability, status and miss alerts.

The daemon calls :func:`forecast_key_result` once per key result and cycle. It
keeps one :class:`ErrorPool` per installation, which calibrates the prediction
intervals from the forecast errors of all KPI series, and one
:class:`AttainmentAlertState` per forecast rule and key result.
"""

from __future__ import annotations

from detectors.keyresults._alert import AttainmentAlertState
from detectors.keyresults._forecast import forecast_key_result
from detectors.keyresults._pool import ErrorPool
from detectors.keyresults._spec import (
    STATUSES,
    KeyResultForecast,
    KeyResultSpec,
)

__all__ = [
    "STATUSES",
    "AttainmentAlertState",
    "ErrorPool",
    "KeyResultForecast",
    "KeyResultSpec",
    "forecast_key_result",
]
