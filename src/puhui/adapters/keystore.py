"""The subject key: a random secret in a file outside the database, readable only by its owner."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from puhui.domain.errors import ConfigurationError

KEY_BYTES = 32


def create_key(path: Path) -> bytes:
    """Create a new key file (mode 0600) unless one exists; return the key in use."""
    if path.exists():
        return read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    return secret


def read_key(path: Path) -> bytes:
    """Read the key.

    Raises:
        ConfigurationError: the file is missing or does not hold a key.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigurationError(
            f"no subject key at {path}: run `puhui init`, or set PUHUI_KEY_FILE"
        ) from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ConfigurationError(f"{path} does not hold a hex key") from None
    if len(secret) < 16:
        raise ConfigurationError(f"{path}: key too short ({len(secret)} bytes)")
    return secret
