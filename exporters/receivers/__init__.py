"""Notification receivers, one module per type."""
