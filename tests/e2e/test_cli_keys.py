"""`puhui keys` and the subject key, as an operator runs them: rotation writes a version of
its own readable by its owner only, the subject key is never rotated, a key file other users
can read is refused with the chmod to run, and `init` never makes a new key for a database
keyed before."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any


def _refused(cli: Any, *args: str) -> str:
    """Run a command that must fail; what it printed."""
    done = subprocess.run(
        [*cli.argv, *args], capture_output=True, text=True, env=cli.env, timeout=300, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return " ".join((done.stdout + done.stderr).split())  # as one line, however wrapped


def _files(folder: Path) -> dict[Path, bytes]:
    """Every file in a folder and what it holds."""
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_keys_are_listed_and_rotated_but_the_subject_key(cli: Any, tmp_path: Path) -> None:
    listed = cli("keys", "list")
    assert "pseudonyms" in listed
    assert "citizen-tokens" in listed
    assert "v1" not in listed

    done = cli("keys", "rotate", "citizen-tokens")
    assert "citizen-tokens: version 1 signs from now on" in done
    written = tmp_path / "subject.keys" / "citizen-tokens.1.key"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    row = next(line for line in cli("keys", "list").splitlines() if "citizen-tokens" in line)
    assert "v1" in row
    assert "0, 1" in row

    refused = _refused(cli, "keys", "rotate", "pseudonyms")
    assert "the subject key cannot be rotated" in refused
    assert "no identifier is stored" in refused
    assert sorted(p.name for p in written.parent.iterdir()) == ["citizen-tokens.1.key"]


def test_a_key_file_others_can_read_is_refused_with_the_chmod_to_run(
    cli: Any, tmp_path: Path
) -> None:
    key = tmp_path / "subject.key"
    key.chmod(0o644)
    refused = _refused(cli, "keys", "list")
    assert f"run `chmod 600 {key}`" in refused
    assert "mode 644" in refused
    key.chmod(0o600)
    assert "pseudonyms" in cli("keys", "list")


def test_init_never_writes_a_key_for_a_database_keyed_before(cli: Any, tmp_path: Path) -> None:
    key = tmp_path / "subject.key"
    key.rename(tmp_path / "backup.key")
    before = _files(tmp_path)
    refused = _refused(cli, "init")
    assert "this database was initialised with a subject key" in refused
    assert "restore it from its backup" in refused
    assert not key.exists()
    assert _files(tmp_path) == before  # nothing written (on SQLite, the database neither)
    (tmp_path / "backup.key").rename(key)
    assert "subject key kept" in cli("init")
