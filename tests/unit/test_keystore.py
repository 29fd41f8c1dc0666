"""Keys by purpose in files (`adapters.keystore`): the subject key is never rotated, every
other purpose has versions written beside it, and a key file other users can read is refused
with the command that fixes it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from puhui.adapters import keystore
from puhui.domain.errors import ConfigurationError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keyring(tmp_path: Path) -> keystore.Keyring:
    """A subject key of a fresh install, no purpose rotated yet."""
    keystore.create_key(tmp_path / "puhui.key")
    return keystore.Keyring(tmp_path / "puhui.key")


def test_a_new_subject_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    secret = keystore.create_key(tmp_path / "puhui.key")
    assert _mode(tmp_path / "puhui.key") == 0o600
    assert len(secret) == keystore.KEY_BYTES
    # Created once: asked again, the key already there is kept.
    assert keystore.create_key(tmp_path / "puhui.key") == secret
    assert keystore.read_key(tmp_path / "puhui.key") == secret


def test_version_0_of_each_purpose_comes_from_the_subject_key(keyring: keystore.Keyring) -> None:
    for purpose in keystore.PURPOSES:
        assert keyring.current(purpose) == (0, keystore.derive(keyring.subject, purpose))
    # Purposes that keyed with the subject key before keys had purposes keep it as version 0
    # (each applies a context of its own); the others get keys of their own.
    assert keyring.current("citizen-tokens")[1] == keyring.subject
    consent = keyring.current("consent-codes")[1]
    checkpoints = keyring.current("checkpoints")[1]
    assert len({consent, checkpoints, keyring.subject}) == 3
    assert not keyring.directory.exists()  # nothing written for version 0


def test_rotation_writes_version_1_beside_the_subject_key_with_mode_0600(
    keyring: keystore.Keyring, tmp_path: Path
) -> None:
    assert keyring.rotate("citizen-tokens") == 1
    written = tmp_path / "puhui.keys" / "citizen-tokens.1.key"
    assert keyring.directory == tmp_path / "puhui.keys"
    assert _mode(written) == 0o600
    assert _mode(keyring.directory) == 0o700
    version, key = keyring.current("citizen-tokens")
    assert (version, key) == (1, keystore.read_key(written))
    assert key != keyring.subject
    assert sorted(keyring.versions("citizen-tokens")) == [0, 1]
    # A process started afterwards finds the same versions.
    again = keystore.Keyring(tmp_path / "puhui.key")
    assert again.versions("citizen-tokens") == keyring.versions("citizen-tokens")
    # Other purposes are left alone.
    assert keyring.current("certificates")[0] == 0


def test_each_rotation_adds_a_version(keyring: keystore.Keyring) -> None:
    assert [keyring.rotate("certificates") for _ in range(3)] == [1, 2, 3]
    versions = keyring.versions("certificates")
    assert sorted(versions) == [0, 1, 2, 3]
    assert len(set(versions.values())) == 4


def test_the_subject_key_is_never_rotated(keyring: keystore.Keyring) -> None:
    with pytest.raises(ConfigurationError, match="subject key cannot be rotated") as refused:
        keyring.rotate("pseudonyms")
    assert "no identifier is stored" in str(refused.value)
    assert not keyring.directory.exists()


def test_an_unknown_purpose_is_refused_with_the_purposes_there_are(
    keyring: keystore.Keyring,
) -> None:
    with pytest.raises(ConfigurationError, match="no key purpose 'tokens': one of platform-"):
        keyring.rotate("tokens")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_subject_key_other_users_can_reach_is_refused_with_the_chmod_to_run(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "puhui.key"
    keystore.create_key(path)
    path.chmod(mode)
    with pytest.raises(ConfigurationError, match=f"run `chmod 600 {path}`") as refused:
        keystore.read_key(path)
    assert f"mode {mode:o}" in str(refused.value)
    path.chmod(0o600)
    assert keystore.read_key(path)


def test_a_rotated_key_other_users_can_read_is_refused_too(
    keyring: keystore.Keyring, tmp_path: Path
) -> None:
    keyring.rotate("platform-secrets")
    written = keyring.directory / "platform-secrets.1.key"
    written.chmod(0o644)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {written}"):
        keystore.Keyring(tmp_path / "puhui.key").versions("platform-secrets")


def test_a_missing_or_damaged_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no subject key at .*restore the file from"):
        keystore.read_key(tmp_path / "absent.key")
    path = tmp_path / "bad.key"
    path.write_text("not hex\n")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="does not hold a hex key"):
        keystore.read_key(path)
    path.write_text("00ff\n")
    with pytest.raises(ConfigurationError, match="too short"):
        keystore.read_key(path)


def test_files_of_other_purposes_and_strangers_in_the_directory_are_not_versions(
    keyring: keystore.Keyring,
) -> None:
    keyring.rotate("consent-codes")
    (keyring.directory / "README").write_text("backups of these go offline\n")
    assert sorted(keyring.versions("consent-codes")) == [0, 1]
    assert sorted(keyring.versions("citizen-tokens")) == [0]


def test_a_rotation_racing_another_never_overwrites_its_key(
    keyring: keystore.Keyring, tmp_path: Path
) -> None:
    assert keyring.current("checkpoints")[0] == 0  # this process read the versions first
    other = keystore.Keyring(tmp_path / "puhui.key")
    assert other.rotate("checkpoints") == 1
    written = keystore.read_key(keyring.directory / "checkpoints.1.key")
    with pytest.raises(ConfigurationError, match="version 1 of checkpoints was written"):
        keyring.rotate("checkpoints")
    assert keystore.read_key(keyring.directory / "checkpoints.1.key") == written
    assert keyring.rotate("checkpoints") == 2  # read again, the next version is 2


def test_a_key_path_that_cannot_be_read_is_named_not_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "puhui.key"
    folder.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match=f"cannot read the key file {folder}"):
        keystore.read_key(folder)
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe" * 20)
    binary.chmod(0o600)
    with pytest.raises(ConfigurationError, match="cannot read the key file"):
        keystore.read_key(binary)
