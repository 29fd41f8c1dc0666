"""Benchmarks and synthetic data: realistic member-platform files with known expected receipts."""
