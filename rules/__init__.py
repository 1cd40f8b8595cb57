"""The rule language: rule models, expressions, alert lifecycle."""
