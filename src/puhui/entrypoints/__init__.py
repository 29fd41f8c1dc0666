"""Thin shells around the service layer: the command line, the HTTP API, the dashboard."""
