"""Rotating a purpose's key, on SQLite and PostgreSQL: citizen tokens of the old version are
refused at once, while certificates and platform credentials issued before still verify (each
check in a process started after the rotation, as a restarted server would be)."""

from __future__ import annotations

import secrets
import stat

import pytest

from puhui.bootstrap import App, bootstrap
from puhui.domain import signing
from puhui.domain.errors import AuthenticationError
from puhui.service import admin, citizens, credentials, ingest, queries, wallet
from tests.builders import trip
from tests.conftest import NOW


def _restarted(app: App) -> App:
    """The same database and key file, in a process that reads the keys anew."""
    return bootstrap(app.settings, clock=lambda: NOW)


def test_a_rotation_refuses_citizen_tokens_of_version_0(app: App) -> None:
    pseudonym = queries.pseudonym_of(app, "13800138000")
    before = citizens.issue_session(app, pseudonym).token
    assert citizens.verify_token(app, before).pseudonym == pseudonym

    assert app.keyring.rotate("citizen-tokens") == 1
    written = app.keyring.directory / "citizen-tokens.1.key"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600

    restarted = _restarted(app)
    try:
        with pytest.raises(AuthenticationError, match="no longer in use: sign in again"):
            citizens.verify_token(restarted, before)
        after = citizens.issue_session(restarted, pseudonym).token
        assert citizens.verify_token(restarted, after).pseudonym == pseudonym
    finally:
        restarted.close()


def test_certificates_and_credentials_issued_before_a_rotation_still_verify(app: App) -> None:
    admin.add_platform(app, "amap")
    creds = credentials.issue(app, "amap")
    ingest.ingest_records(app, "amap", [trip("t1")])
    pseudonym = queries.pseudonym_of(app, "13800138000")
    printed = wallet.retire(app, pseudonym, 100, "k1", "test").result["certificate"]

    assert app.keyring.rotate("certificates") == 1
    assert app.keyring.rotate("platform-secrets") == 1
    restarted = _restarted(app)
    try:
        found = wallet.verify_certificate(restarted, printed)
        assert (found.certificate, found.kind) == (printed, "retirement")
        assert found.result["certificate"] == printed  # it reads as it was printed
        # A certificate issued now is checked with version 1, and verifies too.
        later = wallet.retire(restarted, pseudonym, 50, "k2", "test").result["certificate"]
        assert later != wallet.certificate_id(restarted, int(later.split("-")[1]), 0)
        assert wallet.verify_certificate(restarted, later).certificate == later

        # The platform signs with the secret it was given before the rotation.
        body = b'{"records": []}'
        headers = signing.signed_headers(
            creds.key_id, creds.secret, "POST", "/v1/records", body, int(NOW.timestamp()),
            secrets.token_hex(16),
        )  # fmt: skip
        signed = credentials.verify_signature(restarted, "POST", "/v1/records", headers, body)
        assert signed.platform == "amap"
        # Credentials issued now derive from version 1, and verify as well.
        fresh = credentials.issue(restarted, "amap")
        assert fresh.secret != signing.derive_secret(restarted.keys("platform-secrets")[0],
                                                     fresh.key_id)  # fmt: skip
        headers = signing.signed_headers(
            fresh.key_id, fresh.secret, "POST", "/v1/records", body, int(NOW.timestamp()),
            secrets.token_hex(16),
        )  # fmt: skip
        signed = credentials.verify_signature(restarted, "POST", "/v1/records", headers, body)
        assert signed.platform == "amap"
    finally:
        restarted.close()
