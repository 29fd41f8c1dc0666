"""Implementations of the service layer's ports: SQL, batch engines, files, key store."""
