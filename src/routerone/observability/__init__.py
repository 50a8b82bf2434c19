"""Metrics (Prometheus) and structured JSON logs."""
