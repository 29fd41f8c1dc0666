"""The signed-request examples of docs/api.md work, as written, against a real server, and the
refusal codes it lists are the ones the server uses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from puhui.domain.signing import DESCRIPTIONS
from tests.e2e.conftest import Server
from tests.e2e.conftest import credentials_of as _credentials

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def _block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)
    signed = [b for b in blocks if "X-Puhui-Signature" in b]
    assert len(signed) == 1, f"expected one signed {language} example"
    return signed[0]


def _env(cli: Any, server: Server) -> dict[str, str]:
    creds = _credentials(cli("platform", "add", "amap"))
    return {
        **os.environ,
        "PUHUI_URL": server.base,
        "PUHUI_KEY_ID": creds["key_id"],
        "PUHUI_SECRET": creds["secret"],
    }


def test_the_python_example_submits_and_reads_back(cli: Any, server: Server) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _block("python")],
        env=_env(cli, server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["AMAP-2026-10-000001 credited  1079", "credited"]


def test_the_curl_example_submits(cli: Any, server: Server) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _block("sh")],
        env=_env(cli, server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"status":"credited"' in done.stdout, done.stdout


def test_every_refusal_code_is_documented() -> None:
    for refusal, description in DESCRIPTIONS.items():
        assert f"| 401 | `{refusal.value}` | {description} |" in DOC, refusal
