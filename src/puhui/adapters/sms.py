"""Sending one-time sign-in codes by SMS (`service.ports.SmsGateway`).

A real gateway is the operator's to plug in. These two are for development and tests: an
outbox file of JSON lines, and the console. Neither ever writes a whole mobile number: the
number is shown masked (`+86 189 **** 6928`), the message in full (it holds the code, which is
what the outbox is read for).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from puhui.domain import consent


class OutboxSms:
    """Appends each message to a file, one JSON object a line: `at`, `to` (masked), `text`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, canonical: str, text: str, at: datetime) -> None:
        """Write one message to the outbox (readable by its owner only)."""
        line = json.dumps(
            {"at": at.isoformat(), "to": consent.masked(canonical), "text": text},
            ensure_ascii=False,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class ConsoleSms:
    """Prints each message on a stream (standard error by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, canonical: str, text: str, at: datetime) -> None:
        """Print one message with the masked number."""
        print(f"SMS to {consent.masked(canonical)}: {text}", file=self.stream or sys.stderr)
