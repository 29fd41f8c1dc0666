"""Batch engines: reading files into Arrow chunks and settling them set-based."""
