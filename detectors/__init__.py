"""Anomaly detectors and key result forecasting."""
