"""Key result forecasting: attainment probability, status and miss alerts.

The daemon forecasts every key result once per cycle through one
:class:`KeyResultForecaster`, which refits a key result's model only when its
history gains a step; :func:`forecast_key_result` is the same forecast
without the cache. The daemon keeps one :class:`ErrorPool` per installation,
which calibrates the prediction intervals from the forecast errors of all KPI
series. :class:`AttainmentAlertState` is the miss-alert policy of the
benchmark, with confirmation and hysteresis.
"""

from __future__ import annotations

from detectors.keyresults._alert import AttainmentAlertState
from detectors.keyresults._forecast import forecast_key_result
from detectors.keyresults._forecaster import KeyResultForecaster
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
    "KeyResultForecaster",
    "KeyResultSpec",
    "forecast_key_result",
]
