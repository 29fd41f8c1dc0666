"""Keys, by purpose, in files outside the database, each readable only by its owner.

The *subject key* (`Settings.key_file`) pseudonymises citizens' identifiers. It cannot be
rotated: a pseudonym is a keyed hash of an identifier, and the identifier is never stored, so a
new key would make every citizen a stranger to their own account. Lose it and no record sent
later can be matched to an existing account (the ledger and its audits still hold); keep a
copy offline.

Every other purpose (`PURPOSES`) has versions. Version 0 is derived from the subject key, each
purpose with a context of its own, so a fresh install needs no other file; `puhui keys rotate
PURPOSE` writes version n+1, a random key of its own, beside the subject key
(`<key>.keys/<purpose>.<n>.key`), and from then on that version signs. What an old version
signed stays verifiable where the purpose allows it (certificates, checkpoints, platform
credentials); citizen tokens and consent codes of an old version are refused at once, which is
what a rotation after a leak needs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from puhui.domain.errors import ConfigurationError

KEY_BYTES = 32

# What each rotatable key is for.
PURPOSES: dict[str, str] = {
    "platform-secrets": "member platforms' API secrets (HMAC request signing)",
    "citizen-tokens": "citizens' bearer tokens given to member apps",
    "consent-codes": "one-time sign-in codes and OAuth authorization codes",
    "certificates": "the check part of retirement and tree certificate ids",
    "checkpoints": "the Ed25519 key that signs the ledger's hash-chain checkpoints",
    "federation": "the Ed25519 key that signs a node's batches, or the registry's answers, in "
    "the common mechanism (never derived from the subject key, which a federation's nodes share)",
}
_FILE = re.compile(r"([a-z-]+)\.([0-9]{1,6})\.key")


def create_key(path: Path) -> bytes:
    """Create a new key file (mode 0600) unless one exists; return the key in use."""
    if path.exists():
        return read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(KEY_BYTES)
    _write(path, secret)
    return secret


def read_key(path: Path) -> bytes:
    """Read a key file.

    Raises:
        ConfigurationError: the file is missing, cannot be read, is open to other users, or
            does not hold a key.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigurationError(
            f"no subject key at {path}: run `puhui init` for a new database, restore the file "
            "from its backup for an existing one, or set PUHUI_KEY_FILE"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        # Not the key file's owner, a folder, bytes that are not text: said, not a traceback.
        raise ConfigurationError(f"cannot read the key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path} is open to other users (mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}`"
        )
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ConfigurationError(f"{path} does not hold a hex key") from None
    if len(secret) < 16:
        raise ConfigurationError(f"{path}: key too short ({len(secret)} bytes)")
    return secret


def _write(path: Path, secret: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")


@dataclass
class Keyring:
    """The subject key and every version of each purpose's key."""

    subject_key_file: Path
    _subject: bytes | None = field(default=None, repr=False)
    _versions: dict[str, dict[int, bytes]] = field(default_factory=dict, repr=False)

    @property
    def directory(self) -> Path:
        """Where the rotated keys are kept: `<key file>.keys/` beside the subject key."""
        return self.subject_key_file.with_name(self.subject_key_file.name + "s")

    @property
    def subject(self) -> bytes:
        """The subject key, which pseudonymises identifiers."""
        if self._subject is None:
            self._subject = read_key(self.subject_key_file)
        return self._subject

    def versions(self, purpose: str) -> dict[int, bytes]:
        """Every version of a purpose's key (0, derived from the subject key, and each
        rotation's), read once.

        Raises:
            ConfigurationError: no such purpose, or a key file is unreadable.
        """
        if purpose not in PURPOSES:
            raise ConfigurationError(f"no key purpose {purpose!r}: one of {', '.join(PURPOSES)}")
        found = self._versions.get(purpose)
        if found is None:
            found = {0: derive(self.subject, purpose)}
            if self.directory.is_dir():
                for path in self.directory.iterdir():
                    m = _FILE.fullmatch(path.name)
                    if m and m.group(1) == purpose:
                        found[int(m.group(2))] = read_key(path)
            self._versions[purpose] = found
        return found

    def current(self, purpose: str) -> tuple[int, bytes]:
        """The version that signs now, and its key."""
        versions = self.versions(purpose)
        latest = max(versions)
        return latest, versions[latest]

    def rotate(self, purpose: str) -> int:
        """Write the next version of a purpose's key and return its number.

        Raises:
            ConfigurationError: the purpose is the subject key's, or unknown; or another
                rotation wrote the same version meanwhile.
        """
        if purpose == "pseudonyms":
            raise ConfigurationError(
                "the subject key cannot be rotated: every pseudonym is keyed with it and no "
                "identifier is stored to compute them again"
            )
        version = max(self.versions(purpose)) + 1
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._versions.pop(purpose, None)
        try:
            _write(self.directory / f"{purpose}.{version}.key", secrets.token_bytes(KEY_BYTES))
        except FileExistsError:
            # Never overwrite a key: what it signed would no longer verify.
            raise ConfigurationError(
                f"version {version} of {purpose} was written meanwhile by another rotation; "
                "nothing was changed"
            ) from None
        return version


def derive(subject: bytes, purpose: str) -> bytes:
    """Version 0 of a purpose's key: the subject key itself for the purposes that keyed with
    it before keys had purposes (each still applies a context of its own), a derived key for
    the others."""
    if purpose in ("platform-secrets", "citizen-tokens", "certificates"):
        return subject
    return hmac.digest(subject, b"puhui key\x00" + purpose.encode(), hashlib.sha256)
